"""Orchestration overhead on short real trials: scalesweep against Ray Tune's defaults, same trials.

    .venv/bin/python benchmarks/orchestration.py [--trials 40] [--epochs 300]

Each trial trains the copy-task transformer (width 32, 16 samples, 2 stacked seeds) for --epochs
epochs, about a second on a core (the mean is printed). Every run starts its own local Ray in a fresh
process; the wall is measured around the sweep itself (Ray's start excluded). Ratio = wall / (sum of the trials'
own seconds / CPUs): 1.0 is a machine that only trains. scalesweep also runs twice the trials, and
the marginal ratio of the added ones shows the steady state without the sweep's start-up. The same ratios
against one trial's seconds alone (in a process of its own, after an untimed warm-up run) are printed
too: a trial's own seconds in a sweep include what the sweep's other processes take from it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import textwrap
from pathlib import Path

from fresh import COPY_TASK, run_json, run_sweep

FIXED = {**COPY_TASK, "seeds": 2}

TUNE_DEFAULTS = textwrap.dedent("""
    import json, sys, time
    import ray
    from ray import tune
    from orchestrator.tune.shipping import Shipped
    from orchestrator.tune.trial import TrialSettings, tune_function
    fixed, lrs, work = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
    ray.init(num_cpus={cpus}, include_dashboard=False, log_to_driver=False)
    settings = TrialSettings(Shipped(ref="template"), fixed.pop("seeds"), "test_error", 1, 60)
    trainable = tune.with_resources(tune_function(settings), {{"cpu": 1}})
    tuner = tune.Tuner(trainable, param_space={{**fixed, "lr": tune.grid_search(lrs)}},
                       run_config=tune.RunConfig(storage_path=work, verbose=0))
    start = time.monotonic()
    grid = tuner.fit()
    wall = time.monotonic() - start
    print(json.dumps({{"wall": wall, "own": sum(r.metrics["time_total_s"] for r in grid)}}))
""")


ALONE = textwrap.dedent("""
    import json, sys, time
    import torch
    from trainables import Reporter, get_trainable, run_trainable
    from trainables.stacked.process import configure_process
    torch.set_num_threads(1)
    configure_process()  # as a trial's worker does
    config, runs = json.loads(sys.argv[1]), int(sys.argv[2])
    template, seeds = get_trainable("template"), config.pop("seeds")
    run_trainable(template, config, seeds, Reporter())  # imports and first-call costs, untimed
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        run_trainable(template, config, seeds, Reporter())
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"alone": sorted(seconds)[len(seconds) // 2]}))
""")
"""One trial's seconds trained alone in one process (the median of ``runs``): what the trials would cost on a
machine that only trains, without the sweep's processes competing for the cores."""


def _spec(fixed: dict, trials: int) -> dict:
    lrs = [
        round(1e-3 * (1 + i / trials), 6) for i in range(trials)
    ]  # distinct configs, one cell each
    return {
        "name": f"orchestration-{trials}",
        "trainable": "template",
        "fixed": {k: v for k, v in fixed.items() if k != "seeds"},
        "axes": {"lr": lrs},
        "search": {"algorithm": "grid-only"},
        "seeds": fixed["seeds"],
        "metric": {"name": "test_error", "mode": "min"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    fixed = {**FIXED, "epochs": args.epochs}
    lrs = _spec(fixed, args.trials)["axes"]["lr"]
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{args.trials} trials of {args.epochs} epochs on {cpus} CPUs", flush=True)
        alone = run_json(ALONE, json.dumps({**fixed, "lr": lrs[0]}), "3")["alone"]
        print(f"  one trial alone (no sweep around it): {alone:.2f}s", flush=True)
        tune_run = run_json(
            TUNE_DEFAULTS.format(cpus=cpus),
            json.dumps(fixed),
            json.dumps(lrs),
            str(Path(tmp) / "tune"),
        )
        print(
            f"  Ray Tune defaults: wall {tune_run['wall']:.1f}s, trials' own {tune_run['own']:.1f}s",
            flush=True,
        )
        ours = run_sweep(_spec(fixed, args.trials), Path(tmp) / "scalesweep")
        print(
            f"  scalesweep:        wall {ours['wall']:.1f}s, trials' own {ours['own']:.1f}s, "
            f"{ours['own'] / ours['trials']:.2f}s per trial (Optuna-free grid, Parquet and MLflow on sqlite included)",
            flush=True,
        )
        double = run_sweep(_spec(fixed, 2 * args.trials), Path(tmp) / "scalesweep-double")
        print(
            f"  scalesweep, {2 * args.trials} trials: wall {double['wall']:.1f}s, trials' own {double['own']:.1f}s",
            flush=True,
        )
    for name, run in (("Ray Tune defaults", tune_run), ("scalesweep", ours)):
        print(f"{name:18s} ratio wall / (own / {cpus}) = {run['wall'] / (run['own'] / cpus):.2f}")
    marginal = (double["wall"] - ours["wall"]) / ((double["own"] - ours["own"]) / cpus)
    print(
        f"scalesweep marginal ratio, {args.trials} more trials: Δwall / (Δown / {cpus}) = {marginal:.2f} "
        f"(start-up costs cancel: Ray's workers importing torch, MLflow creating its database)"
    )
    print(f"scalesweep wall / Tune defaults wall = {ours['wall'] / tune_run['wall']:.2f}")
    # The trials' own seconds include what the sweep's other processes take from them (the driver, Ray's
    # agents, the first trial's imports in each worker): against trials alone the ratios are stricter.
    for name, run in (("Ray Tune defaults", tune_run), ("scalesweep", ours)):
        print(
            f"{name:18s} ratio wall / (trials × alone / {cpus}) = {run['wall'] / (args.trials * alone / cpus):.2f}"
        )
    print(
        f"scalesweep marginal ratio against trials alone: Δwall / ({args.trials} × alone / {cpus}) = "
        f"{(double['wall'] - ours['wall']) / (args.trials * alone / cpus):.2f}"
    )


if __name__ == "__main__":
    main()
