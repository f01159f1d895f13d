"""Train one config without Ray: ``python -m trainables NAME key=value ... [seeds=S] [--jsonl]``.

NAME is an installed trainable or ``package.module:function`` (found from the working directory too).
With ``--jsonl`` every report is printed to stdout as one JSON object per line (the last one is
final) and nothing else goes to stdout: ``epoch``, the seed mean of every metric, and ``rows`` (one
``[member, seed, diverged, metrics, curves]`` per row). Without it, a short progress line is printed for about
every tenth of the run and for the final report. A bad name or key: one line on stderr, exit 2.
Numbers and booleans are passed as such, other values as strings (a trainable's ``resolve`` coerces
further); a value that starts with ``[`` or ``{`` is decoded as JSON.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

from .api import Report, Reporter, seed_mean
from .errors import ConfigError
from .registry import get_trainable, trainable_names
from .replicas import SEEDS, run_trainable
from .stacked.process import configure_process

USAGE = "usage: python -m trainables NAME key=value ... [seeds=S] [--jsonl]"


def _parse(args: list[str]) -> tuple[str, dict[str, Any], bool]:
    jsonl = "--jsonl" in args
    rest = [a for a in args if a != "--jsonl"]
    if not rest or rest[0].startswith("-") or "=" in rest[0]:
        raise ConfigError(
            "trainable", f"expected a trainable name first, one of {trainable_names()} ({USAGE})"
        )
    config: dict[str, Any] = {}
    for arg in rest[1:]:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(arg, f"expected key=value ({USAGE})")
        if value[:1] in "[{":
            try:
                config[key] = json.loads(value)
                continue
            except json.JSONDecodeError:
                raise ConfigError(
                    key, f"expected valid JSON for a structured value, got {value!r}"
                ) from None
        config[key] = _scalar(value)
    return rest[0], config, jsonl


def _scalar(text: str) -> Any:
    """A number or boolean as such ("64" → 64, "1e-3" → 0.001, "true" → True), anything else as text: a
    function trainable declares no types to coerce to."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, (bool, int, float)) else text


def _clean(value: Any) -> Any:
    """NaN/inf become null so that every line is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    try:
        name, config, jsonl = _parse(list(sys.argv[1:] if argv is None else argv))
        trainable = get_trainable(name, ["."])
        seeds = int(config.pop(SEEDS, 1))
        resolved = trainable.resolved(
            {**config, SEEDS: seeds} if trainable.stacks_seeds else config
        )
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    epochs = int(resolved.get(trainable.horizon, 0)) or None
    started = time.perf_counter()
    last_printed = [0]

    def on_report(report: Report) -> None:
        names = sorted({m for row in report.rows for m in row.metrics})
        means = {m: seed_mean(report.rows, m) for m in names}
        if jsonl:
            print(json.dumps(_clean({**report.to_wire(), **means})), flush=True)
            return
        if (
            epochs
            and report.epoch < epochs
            and report.epoch - last_printed[0] < max(1, epochs // 10)
        ):
            return
        last_printed[0] = report.epoch
        shown = "  ".join(f"{k} {v:.4g}" for k, v in means.items() if v is not None)
        diverged = sum(row.diverged for row in report.rows)
        tail = f"  diverged {diverged}" if diverged else ""
        print(
            f"epoch {report.epoch}{'/' + str(epochs) if epochs else ''}  {shown}{tail}  "
            f"({time.perf_counter() - started:.1f}s)",
            flush=True,
        )

    configure_process()
    run_trainable(trainable, config, seeds, Reporter(on_report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
