"""``scalesweep``: validate | run | resume | status | curves | sync-mlflow | report | k8s.

Exit codes: 0 success, 2 bad input (one line on stderr, no traceback), 1 a sweep that ran but failed
(every trial errored or diverged), 130 / 143 a sweep stopped by SIGINT / SIGTERM (resume continues it).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.spec.schema import SpecError, load_spec
from orchestrator.tune.interrupts import SweepInterrupted

if TYPE_CHECKING:
    from orchestrator.tune.run import SweepOutcome


def _plan(spec_path: str, overrides: list[str]):
    from orchestrator.spec.plan import plan_sweep

    return plan_sweep(load_spec(spec_path, overrides), spec_path)


def cmd_validate(args: argparse.Namespace) -> int:
    plan = _plan(args.spec, args.set)
    spec = plan.spec
    print(
        f"{args.spec}: ok — {spec.name}: {spec.n_cells} cells × {spec.samples_per_cell} samples = "
        f"{spec.total_trials} trials, {spec.seeds} seeds each; metric {plan.metric} ({plan.mode})"
    )
    if spec.adaptive:
        grid = len(spec.axes[spec.adaptive.axis])
        print(
            f"  adaptive {spec.adaptive.axis}: at most {spec.adaptive_cells} of the grid's "
            f"{spec.n_cells} cells ({spec.adaptive_groups} groups × ≤{spec.adaptive_cells // spec.adaptive_groups} "
            f"probes of {grid} values), each cell {spec.samples_per_cell} samples"
        )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if args.dry_run:
        from orchestrator.spec.estimate import dry_run

        print(dry_run(_plan(args.spec, args.set)))
        return 0
    from orchestrator.tune import timeline
    from orchestrator.tune.run import run_sweep

    with timeline.recording(args.profile) as profile:
        plan = _plan(args.spec, args.set)
        timeline.mark("spec planned")
        outcome = run_sweep(
            plan, args.results, args.tracking_uri, args.address, args.resume, args.verbose
        )
        code = _report(outcome, args.tracking_uri)
        if profile:
            profile.mark("answer printed")
            print(f"  profile: {profile.write(outcome.results_dir)}")
    return code


def cmd_resume(args: argparse.Namespace) -> int:
    from orchestrator.tune.run import resume_sweep

    outcome = resume_sweep(Path(args.dir), args.tracking_uri, args.address, args.verbose)
    return _report(outcome, args.tracking_uri)


def _report(outcome: "SweepOutcome", tracking_uri: str | None) -> int:
    plan = outcome.plan
    counts = ", ".join(f"{n} {s}" for s, n in outcome.counts.items() if n)
    print(
        f"\n{plan.spec.name}: {sum(outcome.counts.values())} trials ({counts}) in {outcome.seconds:.0f}s"
    )
    print(f"  results: {outcome.results_dir}/trials.parquet, {outcome.results_dir}/metrics/")
    for path in outcome.curve_files:
        print(f"  curve:   {path}")
    uri = tracking_uri or plan.spec.storage.tracking_uri
    if uri and not outcome.tracking_error:
        print(f"  MLflow:  mlflow ui --backend-store-uri {uri}   (experiment {plan.spec.name!r})")
    if outcome.failure:
        print(f"error: {outcome.failure}", file=sys.stderr)
        return 1
    return 1 if sum(outcome.counts.values()) == 0 else 0


def cmd_status(args: argparse.Namespace) -> int:
    from orchestrator.answers.status import format_status, sweep_status

    report = sweep_status(Path(args.dir))
    print(json.dumps(report, indent=2) if args.json else format_status(report))
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from orchestrator.answers.listing import as_json, format_listing, list_sweeps

    entries = list_sweeps(Path(args.dir))
    print(
        json.dumps(as_json(entries), indent=2)
        if args.json
        else format_listing(entries, Path(args.dir))
    )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from orchestrator.answers.compare import compare_sweeps

    out = Path(args.output) if args.output else None
    text, figures = compare_sweeps([Path(d) for d in args.dirs], out)
    if out is None:
        print(text, end="")
    else:
        print("\n".join(map(str, [out, *figures])))
    return 0


def cmd_curves(args: argparse.Namespace) -> int:
    from orchestrator.answers.write import write_sweep_curves
    from orchestrator.spec.plan import load_plan

    root = Path(args.dir)
    plan = load_plan(root)
    if args.from_mlflow:
        from orchestrator.store.mlflow_source import load_from_mlflow

        paths = write_sweep_curves(plan, root, *load_from_mlflow(plan, root, args.from_mlflow))
    else:
        paths = write_sweep_curves(plan, root)
    for path in paths:
        print(path)
    return 0


def cmd_sync_mlflow(args: argparse.Namespace) -> int:
    from orchestrator.store.mlflow_sync import sync_mlflow

    print(sync_mlflow(Path(args.dir), args.tracking_uri))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from orchestrator.answers.report import write_report

    for path in write_report(
        [Path(d) for d in args.dirs], Path(args.output) if args.output else None
    ):
        print(path)
    return 0


def _add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show Ray's, MLflow's and Optuna's log lines (always in the results' driver.log)",
    )


def _version() -> str:
    """The installed distribution's version (a checkout run without installing has none)."""
    try:
        return importlib.metadata.version("scalesweep")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scalesweep", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"scalesweep {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a spec without running anything")
    p.add_argument("spec")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec field"
    )
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("run", help="run a sweep")
    p.add_argument("spec")
    p.add_argument(
        "--results", metavar="DIR", help="results root (default: the spec's storage.results)"
    )
    p.add_argument(
        "--tracking-uri", metavar="URI", help="MLflow tracking URI (default: the spec's)"
    )
    p.add_argument(
        "--address", metavar="ADDR", help="an existing Ray cluster: auto or ray://host:10001"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec field, e.g. --set fixed.epochs=50 (repeatable)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="if the results directory already holds this sweep, continue it (for job retries)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the trial counts and a CPU/GPU-hours estimate from a few timed steps; write nothing",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="write timeline.json: the driver's phases and each trial's span per worker "
        "(benchmarks/orchestration.py --timeline draws it)",
    )
    _add_verbose(p)
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("resume", help="continue a sweep whose driver stopped or was killed")
    p.add_argument("dir")
    p.add_argument(
        "--tracking-uri", metavar="URI", help="MLflow tracking URI (default: the spec's)"
    )
    p.add_argument(
        "--address", metavar="ADDR", help="an existing Ray cluster: auto or ray://host:10001"
    )
    _add_verbose(p)
    p.set_defaults(fn=cmd_resume)

    p = sub.add_parser("status", help="trials per cell of a running or finished sweep")
    p.add_argument("dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_status)

    p = sub.add_parser("ls", help="the sweeps under a results root: state, trials, best, when")
    p.add_argument(
        "dir", nargs="?", default="results", metavar="DIR", help="a results root (default: results)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_ls)

    p = sub.add_parser(
        "compare", help="sweeps side by side: spec diff, n* and slopes, overlaid curves"
    )
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE.md",
        help="write the markdown here, the figures beside it (default: print it; figures under "
        "the first DIR)",
    )
    p.set_defaults(fn=cmd_compare)

    p = sub.add_parser(
        "curves", help="recompute a sweep's curves from its Parquet results (or MLflow runs)"
    )
    p.add_argument("dir")
    p.add_argument(
        "--from-mlflow",
        metavar="URI",
        help="read the trials from this MLflow tracking server instead",
    )
    p.set_defaults(fn=cmd_curves)

    p = sub.add_parser(
        "sync-mlflow", help="backfill MLflow with the runs and metrics it misses (idempotent)"
    )
    p.add_argument("dir")
    p.add_argument(
        "--tracking-uri", metavar="URI", help="MLflow tracking URI (default: the spec's)"
    )
    p.set_defaults(fn=cmd_sync_mlflow)

    p = sub.add_parser(
        "report",
        help="a markdown + self-contained HTML report per sweep: question, plots, n*, compute",
    )
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE.md",
        help="one document for all DIRs here (PNGs copied beside it); default: DIR/report.md",
    )
    p.set_defaults(fn=cmd_report)

    from orchestrator.k8s.commands import add_k8s_commands

    add_k8s_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except SpecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except SweepInterrupted as stop:
        print(f"{stop}", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


def entry() -> None:
    """The ``scalesweep`` command: :func:`main`, and after a sweep an exit that does not keep the user
    waiting on teardown (:func:`orchestrator.tune.run.exit_now`)."""
    code = main()
    if "orchestrator.tune.run" in sys.modules:
        from orchestrator.tune.run import exit_now

        exit_now(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
