"""Kubernetes: the kustomize overlays build, and every manifest they or `scalesweep k8s render` produce
validates: RayJob (and the RayCluster KubeRay makes from it) against the KubeRay v1.7.0 CRD schemas,
core objects and every pod template against the Kubernetes schemas (kubernetes-validate, strict).

No cluster here: kubectl builds the manifests (kustomize) and nothing is applied. `submit` is run
with --dry-run, without kubectl, and against a stand-in kubectl that answers like an API server.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import jsonschema
import pytest
import yaml
from helpers import write_spec

from orchestrator.k8s.render import (
    GPU,
    MAX_JOB_NAME,
    build_overlay,
    job_name,
    memory_mib,
    render,
    to_yaml,
)
from orchestrator.spec.schema import SpecError, load_spec

REPO = Path(__file__).resolve().parent.parent
CRDS = REPO.parent / "shared" / "kuberay-crds"
K8S_VERSIONS = ("1.29", "1.37")  # the oldest and newest Kubernetes minors the manifests must suit
QUICKSTART = REPO / "sweeps" / "quickstart.yaml"

needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not on PATH"
)
needs_crds = pytest.mark.skipif(
    not CRDS.is_dir(), reason=f"KubeRay v1.7.0 CRDs not found at {CRDS}"
)

CPU_SPEC = {
    "name": "copy-cpu",
    "trainable": "template",
    "fixed": {"task": "copy", "model": "transformer", "depth": 1, "heads": 1, "epochs": 20},
    "axes": {"embed_dim": [32, 64], "n_train": [8, 32, 128], "vo_identity": [False, True]},
    "search": {"samples_per_cell": 2, "space": {"lr": {"loguniform": [1e-3, 1e-2]}}},
    "resources": {"cpu": 1},
}  # 24 trials of 1 CPU
GPU_SPEC = {
    "name": "copy-gpu",
    "trainable": "template",
    "fixed": {"task": "copy", "model": "transformer", "depth": 1, "heads": 1, "epochs": 20},
    "axes": {"embed_dim": [32, 64], "n_train": [8, 32, 128]},
    "search": {"samples_per_cell": 3, "space": {"lr": {"loguniform": [1e-3, 1e-2]}}},
    "resources": {"cpu": 2, "gpu": 0.25},
}


# --- validators ----------------------------------------------------------------------------------


@functools.cache
def crd_schema(kind: str) -> dict:
    """The CRD's v1 openAPIV3Schema, strict: the API server drops unknown fields and kubectl's default
    server-side field validation rejects them, so an unknown (misspelt) key is an error here too."""
    files = {"RayJob": "ray.io_rayjobs.yaml", "RayCluster": "ray.io_rayclusters.yaml"}
    crd = yaml.safe_load((CRDS / files[kind]).read_text())
    assert crd["spec"]["names"]["kind"] == kind
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))


def _strict(node: dict) -> dict:
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        node["additionalProperties"] = False
    for child in node.get("properties", {}).values():
        _strict(child)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _strict(node[key])
    for key in ("anyOf", "allOf", "oneOf"):
        for child in node.get(key, []):
            _strict(child)
    return node


def cel_rules_in_use(schema: dict, value, path: str = "") -> list[str]:
    """x-kubernetes-validations are CEL, which jsonschema cannot run: list the rules on fields the
    object sets (the test requires none, so no unevaluated rule applies to our manifests)."""
    found = [f"{path}: {r['rule']}" for r in schema.get("x-kubernetes-validations", [])]
    if isinstance(value, dict):
        for key, child in value.items():
            sub = schema.get("properties", {}).get(key) or (
                schema.get("additionalProperties")
                if isinstance(schema.get("additionalProperties"), dict)
                else None
            )
            if sub:
                found += cel_rules_in_use(sub, child, f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, child in enumerate(value):
            found += cel_rules_in_use(schema["items"], child, f"{path}[{i}]")
    return found


def validate_crd(obj: dict) -> None:
    schema = crd_schema(obj["kind"])
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(obj), key=lambda e: list(e.path))
    assert not errors, [f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors[:5]]
    assert not cel_rules_in_use(schema, obj)


def kuberay_rules(rayjob: dict) -> None:
    """What KubeRay's operator checks beyond the schema (validation.go, ValidateRayJobSpec/Metadata)."""
    name, spec = rayjob["metadata"]["name"], rayjob["spec"]
    assert len(name) <= MAX_JOB_NAME and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name), name
    assert spec["shutdownAfterJobFinishes"] or not spec.get("ttlSecondsAfterFinished")
    assert spec.get("backoffLimit", 0) >= 0 and spec.get("activeDeadlineSeconds", 1) > 0
    cluster = spec["rayClusterSpec"]
    groups = [cluster["headGroupSpec"]] + cluster["workerGroupSpecs"]
    for group in groups:
        assert group["template"]["spec"]["containers"], "a Ray group needs a container"
        params = group.get("rayStartParams", {})
        assert not (
            group.get("resources") and set(params) & {"num-cpus", "num-gpus", "memory", "resources"}
        )
        assert "labels" not in params
    for group in cluster["workerGroupSpecs"]:
        assert 0 <= group["minReplicas"] <= group.get("replicas", 0) <= group["maxReplicas"]
        assert not group.get("suspend")


def validate_core(obj: dict) -> None:
    import kubernetes_validate

    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            raise AssertionError(
                f"{obj['kind']}/{obj['metadata']['name']} (k8s {version}): "
                f"{'.'.join(map(str, err.path))}: {err.message}"
            ) from None


def pod_templates(obj: dict) -> list[dict]:
    if obj["kind"] == "RayJob":
        cluster = obj["spec"]["rayClusterSpec"]
        return [cluster["headGroupSpec"]["template"]] + [
            g["template"] for g in cluster["workerGroupSpecs"]
        ]
    return [obj["spec"]["template"]] if obj["kind"] == "Deployment" else []


def validate_all(objects: list[dict]) -> None:
    for obj in objects:
        if obj["apiVersion"].startswith("ray.io/"):
            validate_crd(obj)
            kuberay_rules(obj)
            cluster = {
                "apiVersion": "ray.io/v1",
                "kind": "RayCluster",  # what KubeRay creates from it
                "metadata": {"name": f"{obj['metadata']['name']}-x7k2p"},
                "spec": obj["spec"]["rayClusterSpec"],
            }
            validate_crd(cluster)
        else:
            validate_core(obj)
        for i, template in enumerate(
            pod_templates(obj)
        ):  # the Pods' full schema, not the CRD's copy of it
            validate_core(
                {
                    "apiVersion": "v1",
                    "kind": "PodTemplate",
                    "metadata": {"name": f"{obj['metadata']['name']}-{i}"},
                    "template": template,
                }
            )


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def rendered(spec_path: Path, overlay: str, **kwargs) -> list[dict]:
    spec = load_spec(spec_path)
    return render(spec, spec_path.read_text(), build_overlay(overlay), **kwargs)[0]


# --- the overlays ---------------------------------------------------------------------------------


@needs_kubectl
@needs_crds
@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_overlay_builds_and_every_object_validates(overlay: str) -> None:
    objects = build_overlay(overlay)
    kinds = sorted(o["kind"] for o in objects)
    expected = [
        "ConfigMap",
        "Deployment",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "RayJob",
        "Service",
    ]
    assert set(kinds) == set(expected) and kinds.count("RayJob") == 1
    validate_all(objects)
    spec_text = by_kind(objects, "ConfigMap")[0]["data"]["spec.yaml"]
    assert (
        load_spec_text(spec_text).name == "k8s-smoke"
    )  # the overlay's example sweep is a valid spec


def load_spec_text(text: str):
    from orchestrator.spec.schema import parse_spec

    return parse_spec(yaml.safe_load(text), "example")


@needs_kubectl
@needs_crds
@pytest.mark.parametrize(
    "overlay,spec", [("cpu", "quickstart"), ("gpu", "gpu"), ("cpu", "long-name")]
)
def test_rendered_manifests_validate(tmp_path: Path, overlay: str, spec: str) -> None:
    path = {
        "quickstart": QUICKSTART,
        "gpu": write_spec(tmp_path / "gpu.yaml", GPU_SPEC),
        "long-name": write_spec(
            tmp_path / "long.yaml",
            {**yaml.safe_load(QUICKSTART.read_text()), "name": "2-" + "very-long-sweep-name-" * 4},
        ),
    }[spec]
    objects = rendered(path, overlay, image="registry.example/scalesweep:1.2.3", max_workers=3)
    validate_all(objects)
    assert all(
        c["image"] == "registry.example/scalesweep:1.2.3"
        for o in objects
        for t in pod_templates(o)
        for c in t["spec"]["containers"]
    )


@needs_kubectl
def test_rayjob_runs_the_resuming_entrypoint_once_at_a_time_on_shared_storage() -> None:
    for overlay in ("cpu", "gpu"):
        objects = build_overlay(overlay)
        rayjob = by_kind(objects, "RayJob")[0]
        spec = rayjob["spec"]
        assert spec["entrypoint"].split() == [
            "scalesweep",
            "run",
            "/spec/spec.yaml",
            "--address",
            "auto",
            "--results",
            "/data/results",
            "--tracking-uri",
            "http://scalesweep-mlflow:5000",
            "--resume",
        ]
        assert spec["submissionMode"] == "HTTPMode"  # no submitter pod to be evicted
        assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
        assert (
            spec["backoffLimit"] >= 1
            and spec["activeDeadlineSeconds"] > 0
            and spec["preRunningDeadlineSeconds"] > 0
        )
        cluster = spec["rayClusterSpec"]
        assert (
            cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
        )  # the driver's node runs no trials
        pvc = by_kind(objects, "PersistentVolumeClaim")
        data = next(p for p in pvc if p["metadata"]["name"] == "scalesweep-data")
        assert data["spec"]["accessModes"] == (
            ["ReadWriteOnce"] if overlay == "cpu" else ["ReadWriteMany"]
        )
        for template in pod_templates(rayjob):  # every Ray node sees the same /data and the spec
            mounts = {
                m["mountPath"]: m["name"] for m in template["spec"]["containers"][0]["volumeMounts"]
            }
            volumes = {v["name"]: v for v in template["spec"]["volumes"]}
            assert (
                volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"] == "scalesweep-data"
            )
            assert volumes[mounts["/spec"]]["configMap"]["name"] == "k8s-smoke-spec"
        pdb = by_kind(objects, "PodDisruptionBudget")[0]
        head_labels = cluster["headGroupSpec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["maxUnavailable"] == 0
        assert pdb["spec"]["selector"]["matchLabels"].items() <= head_labels.items()
    gpu = by_kind(build_overlay("gpu"), "RayJob")[0]["spec"]["rayClusterSpec"]
    group = gpu["workerGroupSpecs"][0]
    assert gpu["enableInTreeAutoscaling"] is True
    assert (group["minReplicas"], group["maxReplicas"]) == (0, 8)  # autoscaling bounds, explicit
    assert group["template"]["spec"]["containers"][0]["resources"]["limits"][GPU] == "1"


@needs_kubectl
def test_pods_run_as_non_root_with_probes_and_requests_and_no_plain_secrets() -> None:
    objects = build_overlay("cpu") + build_overlay("gpu") + rendered(QUICKSTART, "cpu")
    assert not by_kind(objects, "Secret"), "secrets are created by the user and referenced by name"
    secretish = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY|CREDENTIAL|(^|_)URI$")
    for obj in objects:
        for template in pod_templates(obj):
            pod = template["spec"]
            assert (
                pod["securityContext"]["runAsNonRoot"] is True
                and pod["securityContext"]["runAsUser"] != 0
            )
            assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
            for c in pod["containers"]:
                where = f"{obj['kind']}/{obj['metadata']['name']}/{c['name']}"
                assert c["readinessProbe"] and c["livenessProbe"], where
                for kind in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(c["resources"][kind]), where
                assert c["securityContext"]["allowPrivilegeEscalation"] is False
                assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
                for env in c.get("env", []):
                    if secretish.search(env["name"]) and env["name"] != "MLFLOW_BACKEND_STORE_URI":
                        assert "valueFrom" in env, f"{where}: {env['name']} must come from a Secret"
    mlflow = by_kind(build_overlay("gpu"), "Deployment")[0]["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = {e["name"]: e for e in mlflow["env"]}
    assert (
        env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"]
        == "scalesweep-mlflow-postgres"
    )
    assert {"secretRef": {"name": "scalesweep-mlflow-s3", "optional": True}} in mlflow["envFrom"]


# --- render: names and sizes from the spec --------------------------------------------------------


def test_job_names_are_valid_kuberay_names_and_distinct() -> None:
    assert job_name("quickstart") == "quickstart"
    names = {
        job_name(n) for n in ["2-layer", "a" * 80, "a" * 80 + "b", "copy-", "x" * 47, "x" * 48]
    }
    assert len(names) == 6
    for name in names:
        assert len(name) <= MAX_JOB_NAME and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name), name


@needs_kubectl
def test_render_names_the_sweep_objects_and_sizes_workers_from_the_spec(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "cpu.yaml", CPU_SPEC)
    objects = rendered(spec, "cpu", max_workers=3)
    (rayjob,) = by_kind(objects, "RayJob")
    assert rayjob["metadata"]["name"] == "copy-cpu"
    configmap = next(
        o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"] == "copy-cpu-spec"
    )
    assert configmap["data"]["spec.yaml"] == spec.read_text()
    for template in pod_templates(rayjob):
        assert template["metadata"]["labels"]["scalesweep.io/sweep"] == "copy-cpu"
        assert {"name": "spec", "configMap": {"name": "copy-cpu-spec"}} in template["spec"][
            "volumes"
        ]
    assert (
        by_kind(objects, "PodDisruptionBudget")[0]["spec"]["selector"]["matchLabels"][
            "scalesweep.io/sweep"
        ]
        == "copy-cpu"
    )
    assert "k8s-smoke" not in to_yaml(objects)
    group = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    # 24 trials of 1 CPU; cpu overlay workers have 2 CPUs, 3 GiB; capped at 3 workers; no autoscaler
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (3, 3, 3)
    assert group["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "cpu": "2",
        "memory": "3Gi",
    }
    assert group["rayStartParams"]["num-cpus"] == "2"
    assert rayjob["spec"]["entrypoint"].endswith("--resume --set resources.max_concurrent_trials=6")

    spec = write_spec(tmp_path / "gpu.yaml", GPU_SPEC)  # 18 trials of 2 CPUs + 1/4 GPU
    group = by_kind(rendered(spec, "gpu"), "RayJob")[0]["spec"]["rayClusterSpec"][
        "workerGroupSpecs"
    ][0]
    assert (group["minReplicas"], group["replicas"], group["maxReplicas"]) == (
        0,
        0,
        5,
    )  # ceil(18 / 4)
    assert group["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "cpu": "8",
        "memory": "48Gi",
        GPU: "1",
    }
    assert group["rayStartParams"] == {"num-cpus": "8", "num-gpus": "1"}

    big = write_spec(
        tmp_path / "big.yaml",
        {**GPU_SPEC, "resources": {"cpu": 3, "gpu": 0.5, "max_concurrent_trials": 3}},
    )
    rayjob = by_kind(rendered(big, "gpu"), "RayJob")[0]
    group = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert (
        limits == {"cpu": "8", "memory": "48Gi", GPU: "1"} and group["maxReplicas"] == 2
    )  # 2 per GPU, 3 at once
    assert "--set" not in rayjob["spec"]["entrypoint"]  # the spec already caps concurrency

    wide = write_spec(tmp_path / "wide.yaml", {**GPU_SPEC, "resources": {"cpu": 12, "gpu": 2}})
    group = by_kind(rendered(wide, "gpu"), "RayJob")[0]["spec"]["rayClusterSpec"][
        "workerGroupSpecs"
    ][0]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "12", "memory": "72Gi", GPU: "2"}  # the pod grows to one trial
    assert memory_mib("3Gi") == 3072 and memory_mib("1.5Gi") == 1536 and memory_mib("512Mi") == 512


@needs_kubectl
def test_render_refuses_a_spec_that_does_not_fit_the_overlay(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"resources.gpu: 0.25, .* expected --overlay gpu"):
        rendered(write_spec(tmp_path / "gpu.yaml", GPU_SPEC), "cpu")
    with pytest.raises(SpecError, match=r"resources.gpu: 0, .*expected resources.gpu > 0"):
        rendered(write_spec(tmp_path / "cpu.yaml", CPU_SPEC), "gpu")


# --- the image ------------------------------------------------------------------------------------


def test_dockerfile_agrees_with_the_manifests_and_its_build_context() -> None:
    text = (REPO / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    first_from = text.index("\nFROM ")
    for var in re.findall(
        r"^FROM .*?\$\{(\w+)\}", text, re.M
    ):  # FROM sees only ARGs before the first FROM
        assert re.search(rf"^ARG {var}\b", text[:first_from], re.M), var
    rayjob = yaml.safe_load((REPO / "k8s" / "base" / "rayjob.yaml").read_text())
    assert rayjob["spec"]["rayClusterSpec"]["rayVersion"] == args["RAY_VERSION"]
    assert f"SCALESWEEP_CPU_TORCH:-{args['TORCH_VERSION']}" in (REPO / "setup.sh").read_text()
    user = re.findall(r"^USER (\d+):(\d+)", text, re.M)[-1]
    pod = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["securityContext"]
    assert (str(pod["runAsUser"]), str(pod["runAsGroup"])) == user
    assert "download.pytorch.org/whl/cpu" in text and "VARIANT" in text

    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def in_context(
        path: str,
    ) -> bool:  # Docker's rule: the last matching pattern wins; a dir match covers its files
        included = True
        for pattern in patterns:
            negate, pattern = pattern.startswith("!"), pattern.lstrip("!").rstrip("/")
            parts = path.split("/")
            if any(
                fnmatch.fnmatch("/".join(parts[:i]), pattern)
                or (pattern.startswith("**/") and fnmatch.fnmatch(parts[i - 1], pattern[3:]))
                for i in range(1, len(parts) + 1)
            ):
                included = negate
        return included

    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    copied = [
        src
        for line in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", text, re.M)
        for src in line.split()
    ]
    for src in copied:
        assert any(f == src or f.startswith(src + "/") for f in files if in_context(f)), (
            f"COPY {src}"
        )
    assert not [
        f for f in files if in_context(f) and f.startswith(("tests/", "k8s/", ".venv/", "results/"))
    ]
    assert not in_context("orchestrator/__pycache__/cli.cpython-311.pyc")


# --- the CLI --------------------------------------------------------------------------------------


def _cli(args: list[str], cwd: Path, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"PATH": path} if path is not None else {})}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _recording_kubectl(bin_dir: Path, log: Path, script: str) -> str:
    """A kubectl on PATH that logs its arguments, then runs ``script`` (bash) with them."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    fake = bin_dir / "kubectl"
    fake.write_text(f'#!/bin/bash\necho "$*" >> {log}\n{script}\n')
    fake.chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


def test_render_warns_that_a_module_beside_the_spec_must_be_in_the_image(tmp_path: Path) -> None:
    (tmp_path / "mymodel.py").write_text("def train(config, report):\n    pass\n")
    spec = write_spec(tmp_path / "own.yaml", {**CPU_SPEC, "trainable": "mymodel:train"})
    proc = _cli(["k8s", "render", str(spec), "-o", str(tmp_path / "out")], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (
        "warning: trainable 'mymodel:train' is found beside the spec, not installed" in proc.stderr
    )
    built_in = _cli(
        ["k8s", "render", str(write_spec(tmp_path / "cpu.yaml", CPU_SPEC))], cwd=tmp_path
    )
    assert built_in.returncode == 0 and "warning" not in built_in.stderr


@needs_kubectl
def test_cli_render_writes_a_kustomization_that_builds(tmp_path: Path) -> None:
    spec = str(write_spec(tmp_path / "cpu.yaml", CPU_SPEC))
    proc = _cli(["k8s", "render", spec, "-o", str(tmp_path / "out")], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (
        "copy-cpu: rayjob/copy-cpu, 1 worker(s) of 2 CPUs (2 trials each), up to 2 trials at once"
        in proc.stdout
    )
    built = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path / "out")], capture_output=True, text=True, check=True
    )
    objects = [d for d in yaml.safe_load_all(built.stdout) if d]
    assert objects == rendered(Path(spec), "cpu")
    for bad, message in [
        ([spec, "--overlay", "gpu"], "resources.gpu: 0, but this overlay's workers"),
        (["nope.yaml"], "nope.yaml: no such file"),
        ([spec, "--overlay", "tpu"], "--overlay tpu: expected cpu, gpu, or a directory"),
        ([spec, "--max-workers", "0"], "--max-workers 0: expected a positive number"),
    ]:
        proc = _cli(["k8s", "render", *bad], cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, (
            proc.stderr
        )


@needs_kubectl
def test_cli_submit_dry_run_prints_commands_and_manifests_and_applies_nothing(
    tmp_path: Path,
) -> None:
    log = tmp_path / "kubectl.log"
    real = shutil.which("kubectl")
    path = _recording_kubectl(
        tmp_path / "bin", log, f'[ "$1" = kustomize ] && exec {real} "$@"; exit 99'
    )
    spec = str(write_spec(tmp_path / "cpu.yaml", CPU_SPEC))
    proc = _cli(["k8s", "submit", spec, "--dry-run", "-n", "research"], cwd=tmp_path, path=path)
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in log.read_text().splitlines()] == [
        "kustomize"
    ]  # nothing but the build
    out = proc.stdout
    assert (
        "$ kubectl -n research apply -f - <<'EOF'" in out
        and "$ kubectl -n research create -f - <<'EOF'" in out
    )
    applied, created = (out.split("<<'EOF'\n")[i].split("\nEOF", 1)[0] for i in (1, 2))
    objects = rendered(Path(spec), "cpu")
    assert [d for d in yaml.safe_load_all(applied) if d] == [
        o for o in objects if o["kind"] != "RayJob"
    ]
    assert [d for d in yaml.safe_load_all(created) if d] == by_kind(objects, "RayJob")
    assert "kubectl -n research port-forward svc/scalesweep-mlflow 5000:5000" in out
    assert "kubectl -n research port-forward svc/copy-cpu-head-svc 8265:8265" in out
    assert "/data/results/copy-cpu" in out


def test_cli_submit_without_kubectl_is_one_line(tmp_path: Path) -> None:
    spec = str(write_spec(tmp_path / "cpu.yaml", CPU_SPEC))
    proc = _cli(["k8s", "submit", spec], cwd=tmp_path, path=str(tmp_path / "empty"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: kubectl: not found on PATH")


@needs_kubectl
def test_cli_submit_refuses_an_active_attempt_and_replaces_a_finished_one(tmp_path: Path) -> None:
    """Against a stand-in for the API server: a kubectl that answers the status query from a file."""
    log, status = tmp_path / "kubectl.log", tmp_path / "status"
    real = shutil.which("kubectl")
    path = _recording_kubectl(
        tmp_path / "bin",
        log,
        f"""
case "$1" in
  kustomize) exec {real} "$@";;
  api-resources) echo rayclusters.ray.io; echo rayjobs.ray.io;;
  get) cat {status};;
  apply|create) cat > /dev/null; echo "$1d";;
esac""",
    )
    spec = str(write_spec(tmp_path / "cpu.yaml", CPU_SPEC))
    status.write_text("Running/copy-cpu-ab12c")
    proc = _cli(["k8s", "submit", spec], cwd=tmp_path, path=path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "rayjob/copy-cpu is Running: a sweep runs one attempt at a time" in proc.stderr
    assert not [
        line
        for line in log.read_text().splitlines()
        if line.split()[0] in ("apply", "create", "delete")
    ]

    log.unlink()
    status.write_text("Failed/copy-cpu-ab12c")
    proc = _cli(["k8s", "submit", spec], cwd=tmp_path, path=path)
    assert proc.returncode == 0, proc.stderr
    calls = [line.split()[0] for line in log.read_text().splitlines()]
    assert calls == ["kustomize", "api-resources", "get", "delete", "wait", "apply", "create"]
    assert "wait --for=delete pod -l ray.io/cluster=copy-cpu-ab12c" in log.read_text()
    assert "kubectl get rayjob copy-cpu -w" in proc.stdout


# --- the MLflow server as the manifest runs it ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_from_manifest(root: Path) -> tuple[subprocess.Popen, int]:
    """The cpu overlay's MLflow container, run here: its command, args and env, with each volume's
    mount path mapped under ``root`` and the port made free. Returns the process and port."""
    deployment = by_kind(build_overlay("cpu"), "Deployment")[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["mountPath"]: root / m["name"] for m in container["volumeMounts"]}

    def local(text: str) -> str:  # sqlite:////mlflow-db/mlflow.db -> sqlite:////<root>/db/mlflow.db
        for mount, path in mounts.items():
            path.mkdir(parents=True, exist_ok=True)
            text = re.sub(rf"(?<![\w-]){re.escape(mount)}(?=/|$)", str(path), text)
        return text

    port = free_port()
    args = [local(a) for a in container["command"] + container["args"]]
    args[args.index("--port") + 1], args[args.index("--host") + 1] = str(port), "127.0.0.1"
    args[0] = str(Path(sys.executable).with_name(args[0]))
    env = {**os.environ, **{e["name"]: local(e["value"]) for e in container["env"]}}
    proc = subprocess.Popen(
        args,
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "mlflow.log", "w"),
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return proc, port
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, (
                root / "mlflow.log"
            ).read_text()[-2000:]
            time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@needs_kubectl
def test_mlflow_manifest_serves_the_in_cluster_host_and_keeps_artifacts_on_the_shared_volume(
    tmp_path: Path,
) -> None:
    import mlflow

    proc, port = start_mlflow_from_manifest(tmp_path)
    try:

        def status(host: str) -> int:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1",
                headers={"Host": host},
            )
            try:
                return urllib.request.urlopen(req, timeout=10).status
            except urllib.error.HTTPError as err:
                return err.code

        assert status("scalesweep-mlflow:5000") == 200  # what the Ray driver sends in the cluster
        assert status("scalesweep-mlflow.research.svc.cluster.local:5000") == 200
        assert status("localhost:5000") == 200  # kubectl port-forward
        assert status("attacker.example:5000") == 403  # MLflow's DNS-rebinding guard stays on
        client = mlflow.MlflowClient(f"http://127.0.0.1:{port}")
        run = client.create_run(client.create_experiment("k8s-check"))
        (tmp_path / "note.txt").write_text("hello")
        client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))
        stored = list((tmp_path / "data" / "mlflow-artifacts").rglob("note.txt"))
        assert (
            len(stored) == 1 and stored[0].read_text() == "hello"
        )  # proxied onto the shared volume
        assert list(
            (tmp_path / "db").glob("mlflow.db")
        )  # runs in sqlite on the server's own volume
    finally:
        stop(proc)


@needs_kubectl
@needs_crds
def test_the_validators_reject_what_a_cluster_would() -> None:
    """The checks above have teeth: a misspelt field, a wrong type, a field under a CEL rule, a bad
    KubeRay name and a bad Pod field each fail."""
    objects = build_overlay("cpu")
    rayjob = by_kind(objects, "RayJob")[0]
    deployment = by_kind(objects, "Deployment")[0]
    broken = []
    for mutate in [
        lambda j: j["spec"].update(shutdownAfterJobFinish=True),
        lambda j: j["spec"].update(backoffLimit="2"),
        lambda j: j["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].pop("maxReplicas"),
        lambda j: j["spec"].update(deletionStrategy={"onSuccess": {"policy": "DeleteCluster"}}),
        lambda j: j["metadata"].update(name="2" + "x" * 50),
    ]:
        job = copy.deepcopy(rayjob)
        mutate(job)
        broken.append(job)
    for mutate in [
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(imagePullPolicy=1),
        lambda d: d["spec"]["template"]["spec"].update(securityContxt={}),
    ]:
        dep = copy.deepcopy(deployment)
        mutate(dep)
        broken.append(dep)
    job = copy.deepcopy(
        rayjob
    )  # inside the embedded Pod template, checked against the core Pod schema
    job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0][
        "resources"
    ]["limits"]["cpu"] = "2 cores"
    broken.append(job)
    for obj in broken:
        with pytest.raises(AssertionError):
            validate_all([obj])


@needs_kubectl
@needs_crds
def test_render_accepts_your_own_overlay_on_top_of_ours(tmp_path: Path) -> None:
    """docs/kubernetes.md's recipe: a cluster's details in a directory overlay, passed as --overlay DIR."""
    mine = tmp_path / "my-cluster"
    mine.mkdir()
    (mine / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(REPO / "k8s" / "overlays" / "gpu", mine)],
                "patches": [
                    {
                        "target": {"kind": "PersistentVolumeClaim", "name": "scalesweep-data"},
                        "patch": "- {op: add, path: /spec/storageClassName, value: nfs-client}",
                    }
                ],
            }
        )
    )
    objects = rendered(write_spec(tmp_path / "gpu.yaml", GPU_SPEC), str(mine))
    validate_all(objects)
    data = next(
        o
        for o in by_kind(objects, "PersistentVolumeClaim")
        if o["metadata"]["name"] == "scalesweep-data"
    )
    assert data["spec"]["storageClassName"] == "nfs-client"
    assert by_kind(objects, "RayJob")[0]["metadata"]["name"] == "copy-gpu"


# --- credentials in a spec never go into a ConfigMap ----------------------------------------------

SECRET_VALUES = ("s3cr3t-t0ken", "AKIAEXAMPLE", "wJalrXUtnFEMI")
CREDENTIAL_STORAGE = [
    {"tracking_uri": "https://user:s3cr3t-t0ken@mlflow.example.com"},
    {"checkpoints": "s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/prefix?endpoint_override=minio:9000"},
    {"checkpoints": "s3://bucket/prefix?access_key=AKIAEXAMPLE&secret_key=wJalrXUtnFEMI"},
    {"tracking_uri": "https://mlflow.example.com/?token=s3cr3t-t0ken"},
]


def test_credential_lines_finds_each_form_and_no_shipped_spec_holds_one() -> None:
    from orchestrator.k8s.credentials import credential_lines

    text = "\n".join(
        [
            "name: x",  # 1
            "storage: {tracking_uri: 'https://user:pw@mlflow.example.com'}",  # 2: user info
            "a:",  # 3
            "  checkpoints: s3://KEY:SECRET@bucket/prefix",  # 4
            "  query: s3://bucket/p?scheme=http&secret_key=abc",  # 5: a query parameter
            "  u: https://h.example/x?X-Amz-Signature=abc&password=pw",  # 6
            "fixed: {hf_token: abc, api_key: k, tokenizer: gpt2, max_tokens: 12}",  # 7: keys
            "# was: https://olduser:oldpass@mlflow.example.com",  # 8: a comment
            "b: {tracking_uri: 'https://mlflow.example.com/a@b', checkpoints: /data/x}",  # 9
            "c: {password: '', sort_key: name, n_tokens: 3, token_budget: 5}",  # 10
        ]
    )
    assert credential_lines(text) == [2, 4, 5, 6, 7, 8]
    shipped = [*(REPO / "sweeps").glob("*.yaml"), *(REPO / "k8s").rglob("spec.yaml")]
    found = {str(p.relative_to(REPO)): credential_lines(p.read_text()) for p in shipped}
    assert shipped and not {path: lines for path, lines in found.items() if lines}


@needs_kubectl
@needs_crds
@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
@pytest.mark.parametrize(
    "storage", CREDENTIAL_STORAGE, ids=["user-info", "s3-keys", "query", "token"]
)
def test_a_spec_with_credentials_renders_them_into_no_configmap(
    tmp_path: Path, overlay: str, storage: dict
) -> None:
    base = GPU_SPEC if overlay == "gpu" else CPU_SPEC
    path = write_spec(tmp_path / "spec.yaml", {**base, "storage": storage})
    objects = rendered(path, overlay)
    validate_all(objects)
    for configmap in by_kind(objects, "ConfigMap"):
        assert not any(value in to_yaml([configmap]) for value in SECRET_VALUES), configmap
    name = f"{base['name']}-spec"
    (secret,) = by_kind(objects, "Secret")
    assert secret["metadata"]["name"] == name and secret["stringData"] == {
        "spec.yaml": path.read_text()
    }
    assert secret["metadata"]["labels"]["scalesweep.io/sweep"] == base["name"]
    for template in pod_templates(by_kind(objects, "RayJob")[0]):  # mounted where a ConfigMap was
        mounts = {
            m["name"]: m["mountPath"] for m in template["spec"]["containers"][0]["volumeMounts"]
        }
        assert {"name": "spec", "secret": {"secretName": name}} in template["spec"]["volumes"]
        assert mounts["spec"] == "/spec"


@needs_kubectl
def test_cli_render_warns_in_one_line_without_repeating_the_credentials(tmp_path: Path) -> None:
    storage = {"tracking_uri": "https://user:s3cr3t-t0ken@mlflow.example.com"}
    spec = write_spec(tmp_path / "cpu.yaml", {**CPU_SPEC, "storage": storage})
    proc = _cli(["k8s", "render", str(spec), "-o", str(tmp_path / "out")], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("\n") == 1 and "s3cr3t" not in proc.stderr
    assert proc.stderr.startswith(f"warning: {spec} holds credentials (line ")
    assert (
        "in a Secret, not a ConfigMap" in proc.stderr and "MLFLOW_TRACKING_PASSWORD" in proc.stderr
    )
    assert (tmp_path / "out" / "secret-copy-cpu-spec.yaml").is_file()
    assert not list((tmp_path / "out").glob("configmap-*"))
    built = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path / "out")], capture_output=True, text=True, check=True
    )
    assert [d for d in yaml.safe_load_all(built.stdout) if d] == rendered(spec, "cpu")


@needs_kubectl
@needs_crds
def test_the_documented_credentials_overlay_gives_every_ray_pod_the_secret_as_env(
    tmp_path: Path,
) -> None:
    """docs/kubernetes.md, Credentials: the patch that hands a Secret's keys to the Ray pods as env."""
    doc = (REPO / "docs" / "kubernetes.md").read_text()
    section = doc[doc.index("## Credentials") :]
    recipe = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    mine = tmp_path / "my-cluster"
    mine.mkdir()
    recipe["resources"] = [os.path.relpath(REPO / "k8s" / "overlays" / "gpu", mine)]
    (mine / "kustomization.yaml").write_text(yaml.safe_dump(recipe))
    objects = rendered(write_spec(tmp_path / "gpu.yaml", GPU_SPEC), str(mine))
    validate_all(objects)
    for template in pod_templates(by_kind(objects, "RayJob")[0]):
        container = template["spec"]["containers"][0]
        assert container["envFrom"] == [{"secretRef": {"name": "my-sweep-credentials"}}]
