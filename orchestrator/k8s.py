"""``scalesweep k8s render|submit``: KubeRay manifests for a spec (being written; see issue 8)."""
from __future__ import annotations

import argparse


def add_k8s_commands(sub: argparse._SubParsersAction) -> None:
    """Registers ``scalesweep k8s ...``; kept here so the CLI module stays free of Kubernetes details."""
