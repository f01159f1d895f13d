# syntax=docker/dockerfile:1
# The scalesweep image: Ray (from Ray's own image, so head, workers and the driver agree on the Ray
# version), PyTorch, and scalesweep with its console script. Every pod in k8s/ runs it: Ray head,
# Ray workers and the MLflow server.
#
#   docker build -t scalesweep:0.1.0-cpu .                           # CPU torch (small), k8s/overlays/cpu
#   docker build -t scalesweep:0.1.0-gpu --build-arg VARIANT=gpu .   # CUDA torch, k8s/overlays/gpu
#
# RAY_VERSION must equal rayVersion in k8s/base/rayjob.yaml (a test checks it).
# Arguments used in FROM lines must be declared before the first FROM.
ARG RAY_VERSION=2.60.0
ARG PYTHON_TAG=py311
# VARIANT=cpu|gpu picks the base image and the torch build.
ARG VARIANT=cpu

FROM rayproject/ray:${RAY_VERSION}-${PYTHON_TAG} AS base-cpu
FROM rayproject/ray:${RAY_VERSION}-${PYTHON_TAG}-gpu AS base-gpu

FROM base-${VARIANT}
ARG VARIANT
ARG RAY_VERSION
ARG TORCH_VERSION=2.13.0

# Ray's images run as `ray` (uid 1000, gid 100), the user k8s/ pins with runAsUser/runAsGroup.
USER 1000:100
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1
# Created by the `ray` user (a WORKDIR of its own may be root's): pip builds in the source tree.
RUN mkdir -p /home/ray/scalesweep
WORKDIR /home/ray/scalesweep

# torch first, in its own layer: the largest download, and it changes least. The CPU build comes
# from PyTorch's CPU index (no CUDA libraries); the default PyPI wheel carries CUDA.
RUN --mount=type=cache,target=/home/ray/.cache/pip,uid=1000,gid=100 \
    if [ "$VARIANT" = "cpu" ]; then \
        pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu; \
    elif [ "$VARIANT" = "gpu" ]; then \
        pip install "torch==${TORCH_VERSION}"; \
    else \
        echo "VARIANT must be cpu or gpu, got ${VARIANT}" >&2; exit 1; \
    fi

COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 orchestrator ./orchestrator
COPY --chown=1000:100 trainables ./trainables
COPY --chown=1000:100 scalesweep ./scalesweep
COPY --chown=1000:100 sweeps ./sweeps

# scalesweep itself. Ray and torch are pinned to what is installed (2.13.0 matches the 2.13.0+cpu
# build), so pip keeps them rather than resolving new ones. psycopg2 and boto3 let the same
# image serve MLflow with a PostgreSQL backend and S3 artifacts (k8s/overlays/gpu).
RUN --mount=type=cache,target=/home/ray/.cache/pip,uid=1000,gid=100 \
    pip install . "ray[tune]==${RAY_VERSION}" "torch==${TORCH_VERSION}" psycopg2-binary boto3 \
 && scalesweep --help > /dev/null \
 && python -c "import torch, ray, mlflow, optuna, pyarrow; print('torch', torch.__version__, '| ray', ray.__version__)"

# KubeRay supplies the command (ray start ...) for Ray pods; k8s/base/mlflow.yaml runs `mlflow server`.
CMD ["scalesweep", "--help"]
