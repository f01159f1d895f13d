"""Manifests for one sweep: a kustomize overlay, built by kubectl, then named and sized from the spec.

Kustomize owns the structure (``k8s/base``, ``k8s/overlays/{cpu,gpu}``, or the user's own overlay on
top of them); this module changes only what depends on the sweep, the way a generated overlay
would: the names of the sweep's objects (RayJob, spec ConfigMap, head PodDisruptionBudget), the spec
text, the worker pods' size and count, the driver's concurrency and, optionally, the image. A spec that
holds credentials travels in a Secret instead of the ConfigMap (credentials.py says why).
"""

from __future__ import annotations

import hashlib
import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.k8s.credentials import as_secret, as_secret_volume, credential_lines
from orchestrator.spec.schema import SpecError, SweepSpec

K8S_DIR = Path(__file__).resolve().parents[2] / "k8s"
OVERLAYS = ("cpu", "gpu")
SWEEP_LABEL = "scalesweep.io/sweep"
ROLE_LABEL = "scalesweep.io/role"
SWEEP_NAME_ANNOTATION = "scalesweep.io/sweep-name"
# KubeRay: RayCluster names are at most 53 characters and a RayJob's cluster appends 6 more.
MAX_JOB_NAME = 47
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
GPU = "nvidia.com/gpu"


def job_name(sweep: str) -> str:
    """The RayJob's name: the sweep name when KubeRay accepts it, else a readable prefix and a hash."""
    if DNS_1035.match(sweep) and len(sweep) <= MAX_JOB_NAME:
        return sweep
    digest = hashlib.sha1(sweep.encode()).hexdigest()[:6]
    stem = sweep if sweep[0].isalpha() else f"s-{sweep}"
    stem = stem[: MAX_JOB_NAME - len(digest) - 1].rstrip("-")
    return f"{stem}-{digest}"


def overlay_dir(overlay: str) -> Path:
    """``cpu``/``gpu`` name the shipped overlays; anything else must be a kustomization directory."""
    path = K8S_DIR / "overlays" / overlay if overlay in OVERLAYS else Path(overlay)
    if not (path / "kustomization.yaml").is_file():
        if overlay in OVERLAYS:
            raise SpecError(
                f"{path}: no kustomization.yaml; expected a scalesweep source checkout "
                f"(k8s/ is not installed with the package)"
            )
        raise SpecError(
            f"--overlay {overlay}: expected cpu, gpu, or a directory with a kustomization.yaml"
        )
    return path


def kustomize_command(path: Path) -> list[str]:
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize", str(path)]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build", str(path)]
    raise SpecError(
        "kubectl: not found on PATH; expected kubectl >= 1.27 (its built-in kustomize builds "
        "the manifests) or the standalone kustomize"
    )


def build_overlay(overlay: str) -> list[dict[str, Any]]:
    path = overlay_dir(overlay)
    proc = subprocess.run(kustomize_command(path), capture_output=True, text=True)
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["failed"])[0]
        raise SpecError(f"{path}: kustomize build failed: {first}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@dataclass
class Workers:
    """One worker group's pod size and count, derived from the spec's per-trial resources."""

    cpus: int
    memory_mib: int
    gpus: int
    trials_per_worker: int
    min_replicas: int
    max_replicas: int
    replicas: int
    concurrency: int  # trials the driver keeps running at once


def cpu_quantity(text: str) -> float:
    text = str(text)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory_mib(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(text))
    if not m:
        raise SpecError(f"memory {text!r}: expected a Kubernetes quantity such as 4Gi")
    scale = {
        "Ki": 1 / 1024,
        "Mi": 1,
        "Gi": 1024,
        "Ti": 1024**2,
        "k": 1e3 / 2**20,
        "M": 1e6 / 2**20,
        "G": 1e9 / 2**20,
        "T": 1e12 / 2**20,
        None: 1 / 2**20,
    }[m.group(2)]
    return math.ceil(float(m.group(1)) * scale)


def memory_quantity(mib: int) -> str:
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def plan_workers(
    spec: SweepSpec, group: dict, autoscaling: bool, max_workers: int | None
) -> Workers:
    """Size the overlay's worker pod to whole trials and count the workers the sweep can fill.

    The overlay's pod is the unit (its CPUs, GPUs, and memory per CPU); a trial that needs more
    grows it. GPU trials pack ``1/resources.gpu`` per GPU; CPU trials ``cpus/resources.cpu``.
    """
    res = spec.resources
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    base_cpus, base_gpus = cpu_quantity(limits["cpu"]), int(limits.get(GPU, 0))
    mib_per_cpu = memory_mib(limits["memory"]) / base_cpus
    if base_gpus and not res.gpu:
        raise SpecError(
            "resources.gpu: 0, but this overlay's workers are GPU nodes; expected resources.gpu > 0 "
            "(0.25 packs 4 trials per GPU), or --overlay cpu"
        )
    if res.gpu and not base_gpus:
        raise SpecError(
            f"resources.gpu: {res.gpu}, but this overlay's workers have no GPUs; expected --overlay gpu"
        )
    if res.gpu:
        gpus = max(base_gpus, math.ceil(res.gpu))
        per_worker = math.floor(gpus / res.gpu + 1e-9)
        cpus = max(math.ceil(base_cpus), math.ceil(per_worker * res.cpu - 1e-9))
    else:
        gpus = 0
        cpus = max(math.ceil(base_cpus), math.ceil(res.cpu - 1e-9))
        per_worker = math.floor(cpus / res.cpu + 1e-9)
    wanted = min(res.max_concurrent_trials or spec.total_trials, spec.total_trials)
    cap = max_workers or int(group.get("maxReplicas", 1))
    max_replicas = max(1, min(cap, math.ceil(wanted / per_worker)))
    min_replicas = (
        min(int(group.get("minReplicas", 0)), max_replicas) if autoscaling else max_replicas
    )
    return Workers(
        cpus=cpus,
        memory_mib=math.ceil(mib_per_cpu * cpus),
        gpus=gpus,
        trials_per_worker=per_worker,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        replicas=min_replicas,
        concurrency=min(wanted, max_replicas * per_worker),
    )


def _pod_templates(rayjob: dict) -> list[dict]:
    cluster = rayjob["spec"]["rayClusterSpec"]
    return [cluster["headGroupSpec"]["template"]] + [
        g["template"] for g in cluster.get("workerGroupSpecs", [])
    ]


def _rename(obj: dict, old: str, new: str) -> None:
    meta = obj["metadata"]
    if meta["name"].startswith(old):
        meta["name"] = new + meta["name"][len(old) :]
    meta.setdefault("labels", {})[SWEEP_LABEL] = new


def render(
    spec: SweepSpec,
    spec_text: str,
    objects: list[dict],
    image: str | None = None,
    max_workers: int | None = None,
) -> tuple[list[dict], Workers]:
    """The overlay's objects made into this sweep's: returns the objects and the worker plan. The spec's
    ConfigMap and the pods' volume of it become a Secret when ``spec_text`` holds credentials."""
    rayjobs = [o for o in objects if o.get("kind") == "RayJob"]
    if len(rayjobs) != 1:
        raise SpecError(f"overlay: expected exactly one RayJob, found {len(rayjobs)}")
    rayjob = rayjobs[0]
    old, new = rayjob["metadata"]["name"], job_name(spec.name)
    secret = bool(credential_lines(spec_text))
    cluster = rayjob["spec"]["rayClusterSpec"]
    if len(cluster.get("workerGroupSpecs", [])) != 1:
        raise SpecError("overlay: expected the RayJob to have exactly one worker group")

    for obj in objects:  # the sweep's own objects carry the example's name and label
        if obj["metadata"].get("labels", {}).get(SWEEP_LABEL) == old:
            _rename(obj, old, new)
            obj["metadata"].setdefault("annotations", {})[SWEEP_NAME_ANNOTATION] = spec.name
        if (
            obj["kind"] == "PodDisruptionBudget"
            and obj["spec"]["selector"]["matchLabels"].get(SWEEP_LABEL) == old
        ):
            obj["spec"]["selector"]["matchLabels"][SWEEP_LABEL] = new
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == f"{new}-spec":
            obj["data"] = {"spec.yaml": spec_text}
            if secret:
                as_secret(obj)
    for template in _pod_templates(rayjob):
        template.setdefault("metadata", {}).setdefault("labels", {})[SWEEP_LABEL] = new
        for volume in template["spec"].get("volumes", []):
            if volume.get("configMap", {}).get("name") == f"{old}-spec":
                volume["configMap"]["name"] = f"{new}-spec"
                if secret:
                    as_secret_volume(volume)

    group = cluster["workerGroupSpecs"][0]
    workers = plan_workers(spec, group, bool(cluster.get("enableInTreeAutoscaling")), max_workers)
    group.update(
        replicas=workers.replicas,
        minReplicas=workers.min_replicas,
        maxReplicas=workers.max_replicas,
    )
    group["rayStartParams"] = {**group.get("rayStartParams", {}), "num-cpus": str(workers.cpus)}
    size = {"cpu": str(workers.cpus), "memory": memory_quantity(workers.memory_mib)}
    if workers.gpus:
        size[GPU] = str(workers.gpus)
        group["rayStartParams"]["num-gpus"] = str(workers.gpus)
    group["template"]["spec"]["containers"][0]["resources"] = {
        "requests": dict(size),
        "limits": dict(size),
    }

    if spec.resources.max_concurrent_trials is None:
        # Tune sizes concurrency from the cluster it sees when the driver starts, which is the
        # head alone while an autoscaled group is still at zero workers: say it explicitly.
        rayjob["spec"]["entrypoint"] += (
            f" --set resources.max_concurrent_trials={workers.concurrency}"
        )
    if image:
        for obj in objects:
            templates = (
                _pod_templates(obj)
                if obj["kind"] == "RayJob"
                else [obj["spec"]["template"]]
                if obj["kind"] in ("Deployment", "StatefulSet", "Job")
                else []
            )
            for template in templates:
                for container in template["spec"]["containers"]:
                    container["image"] = image
    return objects, workers


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the spec in its ConfigMap) as readable ``|`` blocks; long lines unfolded."""


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar(
        "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None
    )


_Dumper.add_representer(str, _str)


def to_yaml(objects: list[dict]) -> str:
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, width=4096, allow_unicode=True)


def file_name(obj: dict) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def write_dir(objects: list[dict], out: Path) -> list[Path]:
    """One file per object and a kustomization.yaml listing them, so ``kubectl apply -k DIR`` works."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for obj in objects:
        path = out / file_name(obj)
        path.write_text(to_yaml([obj]))
        paths.append(path)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [p.name for p in paths],
    }
    (out / "kustomization.yaml").write_text(
        "# Written by `scalesweep k8s render`: apply with `kubectl apply -k` (or use `scalesweep k8s submit`).\n"
        + yaml.safe_dump(kustomization, sort_keys=False)
    )
    return paths
