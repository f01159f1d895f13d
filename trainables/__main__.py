"""Train one config without Ray: ``python -m trainables NAME key=value ... [--jsonl]``.

With ``--jsonl`` every report is printed to stdout as one JSON object per line (the last one is
final) and nothing else goes to stdout. Without it, a short progress line is printed for about
every tenth of the run and for the final report. A bad name or key: one line on stderr, exit 2.
Values are passed as strings; the trainable's ``resolve`` coerces them ("64" → 64). A value that
parses as JSON/YAML-like structure (starts with ``[`` or ``{``) is decoded as JSON first.
"""
from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

from .api import ConfigError, Reporter
from .registry import get_trainable, trainable_names

USAGE = "usage: python -m trainables NAME key=value ... [--jsonl]"


def _parse(args: list[str]) -> tuple[str, dict[str, Any], bool]:
    jsonl = "--jsonl" in args
    rest = [a for a in args if a != "--jsonl"]
    if not rest or rest[0].startswith("-") or "=" in rest[0]:
        raise ConfigError("trainable", f"expected a trainable name first, one of {trainable_names()} ({USAGE})")
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
                raise ConfigError(key, f"expected valid JSON for a structured value, got {value!r}") from None
        config[key] = value
    return rest[0], config, jsonl


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
        try:
            trainable = get_trainable(name)
        except KeyError:
            raise ConfigError("trainable", f"expected one of {trainable_names()}, got {name!r}") from None
        resolved = trainable.resolve(config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    epochs = int(resolved.get(trainable.horizon, 0)) or None
    started = time.perf_counter()
    last_printed = [0]

    def on_report(metrics: dict[str, Any]) -> None:
        if jsonl:
            print(json.dumps(_clean(metrics)), flush=True)
            return
        epoch = int(metrics.get("epoch", 0))
        if epochs and epoch < epochs and epoch - last_printed[0] < max(1, epochs // 10):
            return
        last_printed[0] = epoch
        shown = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()
                          if isinstance(v, float) and k != "epoch")
        diverged = sum(metrics.get("diverged", []))
        tail = f"  diverged {diverged}" if diverged else ""
        print(f"epoch {epoch}{'/' + str(epochs) if epochs else ''}  {shown}{tail}  "
              f"({time.perf_counter() - started:.1f}s)", flush=True)

    trainable.train(resolved, Reporter(on_report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
