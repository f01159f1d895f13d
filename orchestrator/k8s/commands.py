"""``scalesweep k8s render|submit``: a sweep as a KubeRay RayJob, launched with kubectl.

``render`` prints (or writes) the manifests for a spec; ``submit`` applies them. A sweep runs one
attempt at a time: ``submit`` refuses while the sweep's RayJob is still active, deletes a finished
one (and waits for its pods to go) before creating the next, and every attempt's entrypoint
resumes from the shared volume, so submitting a sweep again continues it.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from orchestrator.k8s.credentials import credential_lines
from orchestrator.k8s.render import Workers, build_overlay, job_name, render, to_yaml, write_dir
from orchestrator.spec.plan import SweepPlan
from orchestrator.spec.schema import CommandSpec, SpecError, SweepSpec, load_spec

TERMINAL = ("Complete", "Failed")  # RayJob .status.jobDeploymentStatus after the last retry
KUBERAY_CHECK = ["api-resources", "--api-group=ray.io", "-o", "name"]
SHARED_PVC = "scalesweep-data"


def add_k8s_commands(sub: argparse._SubParsersAction) -> None:
    """Registers ``scalesweep k8s ...``; kept here so the CLI module stays free of Kubernetes details."""
    k8s = sub.add_parser(
        "k8s", help="run a sweep on Kubernetes as a KubeRay RayJob (manifests in k8s/)"
    )
    commands = k8s.add_subparsers(dest="k8s_command", required=True)

    p = commands.add_parser("render", help="print or write the manifests for a spec")
    _common_arguments(p)
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="write one file per object and a kustomization.yaml here (default: print YAML)",
    )
    p.set_defaults(fn=cmd_render)

    p = commands.add_parser(
        "submit", help="apply the manifests with kubectl; submitting again resumes the sweep"
    )
    _common_arguments(p)
    p.add_argument(
        "-n", "--namespace", metavar="NS", help="kubectl namespace (default: the context's)"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the kubectl commands and manifests; run nothing",
    )
    p.set_defaults(fn=cmd_submit)


def _common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec")
    p.add_argument(
        "--overlay",
        default="cpu",
        metavar="cpu|gpu|DIR",
        help="k8s/overlays/cpu (a laptop cluster, the default), k8s/overlays/gpu, or your own overlay",
    )
    p.add_argument(
        "--image",
        metavar="IMG",
        help="the scalesweep image for every container (default: the overlay's)",
    )
    p.add_argument(
        "--max-workers",
        type=int,
        metavar="N",
        help="at most N worker pods (default: the overlay's maxReplicas)",
    )


def _load(args: argparse.Namespace) -> tuple[SweepSpec, list[dict], Workers]:
    from orchestrator.spec.plan import plan_sweep

    if args.max_workers is not None and args.max_workers < 1:
        raise SpecError(
            f"--max-workers {args.max_workers}: expected a positive number of worker pods"
        )
    plan = plan_sweep(load_spec(args.spec), args.spec)  # every spec error before a cluster sees it
    if note := _image_must_hold(plan):
        print(f"warning: {note}", file=sys.stderr)
    spec, text = plan.spec, Path(args.spec).read_text()
    if lines := credential_lines(text):
        print(f"warning: {_credentials_note(args.spec, lines)}", file=sys.stderr)
    objects, workers = render(spec, text, build_overlay(args.overlay), args.image, args.max_workers)
    return spec, objects, workers


def _credentials_note(path: str, lines: list[int]) -> str:
    """Where the spec holds credentials (never what they are), what render does, and where they belong."""
    where = f"line{'s' * (len(lines) > 1)} {', '.join(map(str, lines))}"
    return (
        f"{path} holds credentials ({where}): the manifests carry this spec in a Secret, not a "
        f"ConfigMap; better keep them out of the spec, in a Kubernetes Secret the pods read as env "
        f"(MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; "
        f"docs/kubernetes.md, Credentials)"
    )


def _image_must_hold(plan: SweepPlan) -> str | None:
    """What the pods must find in the image beyond scalesweep: only the spec travels in the manifests, so a
    researcher's module found beside the spec, or a command's program, must be built into the image."""
    from orchestrator.tune.shipping import ship

    if isinstance(plan.spec.trainable, CommandSpec):
        return (
            f"trainable command {plan.spec.trainable_label!r} runs in the cluster's pods: build its "
            f"program into your image and pass --image"
        )
    if plan.ref and ship(plan.trainable, plan.ref).code is not None:
        return (
            f"trainable {plan.ref!r} is found beside the spec, not installed: the cluster's pods find "
            f"it only if your image holds it (pip install it there and pass --image)"
        )
    return None


def _describe(spec: SweepSpec, workers: Workers) -> str:
    size = f"{workers.cpus} CPUs" + (
        f", {workers.gpus} GPU{'s' * (workers.gpus > 1)}" if workers.gpus else ""
    )
    count = (
        f"{workers.min_replicas}-{workers.max_replicas}"
        if workers.min_replicas != workers.max_replicas
        else str(workers.max_replicas)
    )
    return (
        f"{spec.name}: rayjob/{job_name(spec.name)}, {count} worker(s) of {size} "
        f"({workers.trials_per_worker} trials each), up to {workers.concurrency} trials at once"
    )


def cmd_render(args: argparse.Namespace) -> int:
    spec, objects, workers = _load(args)
    if args.output is None:
        sys.stdout.write(to_yaml(objects))
        print(_describe(spec, workers), file=sys.stderr)
        return 0
    out = Path(args.output)
    for path in write_dir(objects, out):
        print(path)
    print(
        f"{_describe(spec, workers)}\n  apply: kubectl apply -k {out}   (or: scalesweep k8s submit {args.spec})"
    )
    return 0


class Kubectl:
    """kubectl with the namespace applied; every failure becomes a one-line SpecError."""

    def __init__(self, namespace: str | None, dry_run: bool) -> None:
        exe = shutil.which("kubectl")
        if exe is None and not dry_run:
            raise SpecError(
                "kubectl: not found on PATH; expected kubectl >= 1.27 configured for your cluster "
                "(try --dry-run to see the commands and manifests)"
            )
        self.argv = [exe or "kubectl"] + (["-n", namespace] if namespace else [])
        self.shown = ["kubectl"] + (["-n", namespace] if namespace else [])

    def show(self, args: list[str]) -> str:
        return shlex.join(self.shown + args)

    def run(self, args: list[str], stdin: str | None = None, allow: str | None = None) -> str:
        proc = subprocess.run(self.argv + args, input=stdin, capture_output=True, text=True)
        if proc.returncode != 0 and not (allow and allow in proc.stderr):
            first = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[0]
            raise SpecError(f"{self.show(args[:3])}: {first}")
        return proc.stdout


def _status_args(job: str) -> list[str]:
    return [
        "get",
        "rayjob",
        job,
        "--ignore-not-found",
        "-o",
        "jsonpath={.status.jobDeploymentStatus}/{.status.rayClusterName}",
    ]


def cmd_submit(args: argparse.Namespace) -> int:
    spec, objects, workers = _load(args)
    job = job_name(spec.name)
    rayjob = [o for o in objects if o["kind"] == "RayJob"]
    shared = [o for o in objects if o["kind"] != "RayJob"]
    kubectl = Kubectl(args.namespace, args.dry_run)
    if args.dry_run:
        print("# dry run: nothing was sent to the cluster; `scalesweep k8s submit` would run:")
        print(f"$ {kubectl.show(KUBERAY_CHECK)}   # the KubeRay operator (RayJob API) is installed")
        print(f"$ {kubectl.show(_status_args(job))}   # an active attempt refuses the submit")
        print(
            f"$ {kubectl.show(['delete', 'rayjob', job, '--wait=true'])}   # only if it exists and has finished,"
        )
        print(
            f"$ {kubectl.show(['wait', '--for=delete', 'pod', '-l', 'ray.io/cluster=<its cluster>', '--timeout=600s'])}"
        )
        print(f"$ {kubectl.show(['apply', '-f', '-'])} <<'EOF'\n{to_yaml(shared)}EOF")
        print(f"$ {kubectl.show(['create', '-f', '-'])} <<'EOF'\n{to_yaml(rayjob)}EOF")
        print(_describe(spec, workers))
        print(next_steps(spec.name, job, args.namespace))
        return 0

    if "rayjobs.ray.io" not in kubectl.run(KUBERAY_CHECK).split():
        raise SpecError(
            "this cluster has no RayJob API: install the KubeRay operator v1.7 first "
            "(helm install kuberay-operator kuberay/kuberay-operator --version 1.7.0)"
        )
    found = kubectl.run(_status_args(job)).strip()
    if found:
        status, _, cluster = found.partition("/")
        if status not in TERMINAL:
            raise SpecError(
                f"rayjob/{job} is {status or 'starting'}: a sweep runs one attempt at a time; follow it "
                f"with `{kubectl.show(['get', 'rayjob', job, '-w'])}`, or stop it with "
                f"`{kubectl.show(['delete', 'rayjob', job])}` and submit again to resume"
            )
        print(f"rayjob/{job} finished ({status}): deleting it and waiting for its pods to go")
        kubectl.run(["delete", "rayjob", job, "--wait=true"])
        if cluster:  # the old driver must be gone before the next one starts on the same results
            kubectl.run(
                [
                    "wait",
                    "--for=delete",
                    "pod",
                    "-l",
                    f"ray.io/cluster={cluster}",
                    "--timeout=600s",
                ],
                allow="no matching resources",
            )
    sys.stdout.write(kubectl.run(["apply", "-f", "-"], stdin=to_yaml(shared)))
    sys.stdout.write(kubectl.run(["create", "-f", "-"], stdin=to_yaml(rayjob)))
    print(_describe(spec, workers))
    print(next_steps(spec.name, job, args.namespace))
    return 0


def next_steps(sweep: str, job: str, namespace: str | None) -> str:
    """How to follow the job, find its results and open MLflow: printed after every submit."""
    k = "kubectl" + (f" -n {shlex.quote(namespace)}" if namespace else "")
    head = (
        f'"$({k} get pod -l scalesweep.io/sweep={job},scalesweep.io/role=head '
        f"-o jsonpath='{{.items[0].metadata.name}}')\""
    )
    return "\n".join(
        [
            f"  status:   {k} get rayjob {job} -w",
            f"  driver:   {k} port-forward svc/{job}-head-svc 8265:8265 &",
            f"            ray job logs --address http://localhost:8265 --follow "
            f"\"$({k} get rayjob {job} -o jsonpath='{{.status.jobId}}')\"",
            f"  progress: {k} exec {head} -- scalesweep status /data/results/{sweep}",
            f"  results:  volume {SHARED_PVC}, results/{sweep}/ (trials.parquet, metrics/, curves/); "
            "while the head runs:",
            f"            {k} cp {head}:/data/results/{sweep} ./results/{sweep}",
            f"  MLflow:   {k} port-forward svc/scalesweep-mlflow 5000:5000   then open http://localhost:5000 "
            f"(experiment {sweep})",
            "  resume:   submit the same spec again; it continues from the volume",
        ]
    )
