"""Ray's start as scalesweep's embedded start does it, with and without the head's unused helpers.

    .venv/bin/python benchmarks/ray_start.py [--rounds 3] [--settle 3]

Each round starts Ray twice, in fresh interpreters, in alternating order: as `scalesweep run` starts an
embedded Ray (loopback only, no prestarted workers, none of `UNUSED_HELPERS`), and the same with the
helpers started as Ray starts them (the autoscaler's monitor, the log monitor, the dashboard's API server).
It prints each start's `ray.init` wall and the CPU seconds of the process and everything it started,
`--settle` seconds after `ray.init` returned (the helpers' own start-up goes on after it), then the
medians and their ratios. On a sweep's 2 cores those CPU seconds are taken from the first trials.
"""

from __future__ import annotations

import argparse
import statistics
import textwrap

from fresh import run_json

START = textwrap.dedent("""
    import json, sys, time
    import optuna, psutil, ray  # imported before the clock starts: the start is what is timed
    import orchestrator.tune.run as run
    if sys.argv[1] == "with helpers":
        run.UNUSED_HELPERS = ()
    start = time.monotonic()
    run._init_ray(None)
    wall = time.monotonic() - start
    time.sleep(float(sys.argv[2]))
    processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
    cpu = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            cpu += times.user + times.system
        except psutil.Error:
            pass
    print(json.dumps({"wall": wall, "cpu": cpu, "processes": len(processes)}), flush=True)
    run.exit_now(0)
""")
"""One embedded start as `scalesweep run` makes it, measured; the variant (and how long to let it
settle) from the command line."""

VARIANTS = ("scalesweep", "with helpers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=3.0)
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    for round_ in range(args.rounds):
        order = VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            run = run_json(START, variant, str(args.settle))
            runs[variant].append(run)
            print(
                f"  {variant:13s} ray.init {run['wall']:5.2f}s, CPU {run['cpu']:5.2f}s "
                f"over {run['processes']} processes",
                flush=True,
            )
    medians = {
        variant: {key: statistics.median(r[key] for r in rs) for key in ("wall", "cpu")}
        for variant, rs in runs.items()
    }
    for variant, median in medians.items():
        print(f"median {variant:13s} ray.init {median['wall']:5.2f}s, CPU {median['cpu']:5.2f}s")
    ours, theirs = medians["scalesweep"], medians["with helpers"]
    print(
        f"scalesweep / with helpers: ray.init {ours['wall'] / theirs['wall']:.2f}, "
        f"CPU {ours['cpu'] / theirs['cpu']:.2f}"
    )


if __name__ == "__main__":
    main()
