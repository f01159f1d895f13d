"""Where results live: Parquet (the source of truth), checkpoints, the driver lock, MLflow."""
