"""What a reader reads: cell values, n* and fits as text, and the markdown tables of ``summary.md``.

One cell-value rule (:func:`format_value`, the cell keys' own, from ``cells``) and one markdown table
builder (:func:`markdown_table`) serve every table, legend and report, so a value reads the same in
a cell key, a plot and a document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.answers.curves import ALPHA_MAX, POOR_FIT_RMSE_LOG, SLOPE_COLUMNS, SlopeFit
from orchestrator.spec.cells import format_value

__all__ = [
    "fmt_n",
    "format_value",
    "group_label",
    "markdown_table",
    "sample_complexity_markdown",
    "scaling_law_markdown",
    "slope_markdown",
]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A pipe table as lines (cells as given, ``str`` of anything else), then a blank line."""
    return [
        "| " + " | ".join(map(str, header)) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(map(str, r)) + " |" for r in rows],
        "",
    ]


def group_label(key: dict[str, Any]) -> str:
    """`embed_dim=128, vo_identity=true`, or `all` for the single group of an empty `by`."""
    return ", ".join(f"{k}={format_value(v)}" for k, v in key.items()) or "all"


def fmt_n(v: float, lo_bound: float | None = None, hi_bound: float | None = None) -> str:
    """n* for people: '> 2048' when never reached, '< 4' below the grid (a sigmoid crossing it),
    '≤ 4' at or below its first value, 3 significant digits."""
    if np.isnan(v):
        return "n/a"
    if np.isinf(v):
        return f"> {hi_bound:g}" if hi_bound is not None else "> max"
    if v == 0:
        return f"< {lo_bound:g}" if lo_bound is not None else "< min"
    if lo_bound is not None and v <= lo_bound:  # good from the grid's start: censored below
        return f"≤ {lo_bound:g}"
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def search_n_star(row: dict[str, Any]) -> str:
    """An adaptive search's n* for people (a `Probes.table` row): '≤ 4' below the grid, '> 2048' beyond
    it (its largest failure), 'searching' before it is known."""
    if not row["resolved"]:
        return "searching"
    return {"below": f"≤ {row['n_star']}", "above": f"> {row['fails_at']}"}.get(
        row["censored"], str(row["n_star"])
    )


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows with each column's own type (iterrows would turn an int axis into 64.0 beside floats)."""
    return table.to_dict("records")


def with_ci(v: float, lo: float, hi: float, x_min: float, x_max: float) -> str:
    f = lambda u: fmt_n(u, lo_bound=x_min, hi_bound=x_max)  # noqa: E731
    return f"{f(v)} [{f(lo)}, {f(hi)}]"


def sample_complexity_markdown(
    table: pd.DataFrame, x: str, y: str, by: Sequence[str], threshold: float, mode: str, at: str
) -> list[str]:
    """One table per curve: grid n* and sigmoid n*, each with its CI; '> max' when never."""
    op = "≤" if mode == "min" else "≥"
    rows = [
        [
            *(format_value(r[b]) for b in by),
            with_ci(r["n_star"], r["n_star_lo"], r["n_star_hi"], r["x_min"], r["x_max"]),
            with_ci(
                r["n_star_smooth"],
                r["n_star_smooth_lo"],
                r["n_star_smooth_hi"],
                r["x_min"] / 2,
                r["x_max"] * 2,
            ),
            str(int(r["n_seeds"])),
        ]
        for r in _records(table)
    ]
    return [
        f"## Sample complexity: {y} {op} {threshold:g} vs {x} ({at} epoch)",
        "",
        f"n* = smallest {x} on the grid where the seed-mean {y} {op} {threshold:g} at it and "
        f"at every larger {x}; smooth n* = where a sigmoid in log2 {x} crosses it.",
        "",
        *markdown_table([*by, "n* [CI]", "smooth n* [CI]", "seeds"], rows),
    ]


def slope_markdown(fit: SlopeFit, axis: str) -> list[str]:
    """The (inverse-)scaling exponent per group: n* ∝ axis^slope."""
    others = [c for c in fit.fits.columns if c not in SLOPE_COLUMNS]
    rows = [
        [
            *(format_value(r[b]) for b in others),
            f"{r['slope']:.2f} [{r['slope_lo']:.2f}, {r['slope_hi']:.2f}]",
            str(int(r["n_points"])),
        ]
        for r in _records(fit.fits)
    ]
    est = "smooth n*" if len(fit.fits) and fit.fits["estimate"].iloc[0] == "n_star_smooth" else "n*"
    return [
        f"{est} ∝ {axis}^slope (log-log fit over reached groups):",
        "",
        *markdown_table([*others, "slope [CI]", f"{axis} values"], rows),
    ]


def scaling_law_markdown(
    table: pd.DataFrame, x: str, y: str, by: Sequence[str], at: str
) -> list[str]:
    """α, A, E with CIs, the fit's rms log residual and its flag, one row per group; a flagged fit's α
    is marked † and explained below the table."""

    def ci(r: dict[str, Any], name: str, f: str) -> str:
        return f"{r[name]:{f}} [{r[name + '_lo']:{f}}, {r[name + '_hi']:{f}}]"

    records = _records(table)
    rows = [
        [
            *(format_value(r[b]) for b in by),
            ci(r, "alpha", ".3f") + " †" * bool(r["fit_flag"]),
            ci(r, "A", ".3g"),
            ci(r, "E", ".3g"),
            f"{r['rmse_log']:.3f}",
            str(int(r["n_points"])),
            r["fit_flag"] or ("ok" if np.isfinite(r["alpha"]) else "too few points"),
        ]
        for r in records
    ]
    header = [*by, "α [CI]", "A [CI]", "E [CI]", "rms log resid.", "points", "fit"]
    return [
        f"## Scaling law: {y} = A·{x}^(-α) + E ({at} epoch)",
        "",
        *markdown_table(header, rows),
        *(
            [
                f"† a flagged fit (column fit): α at a bound (0 or {ALPHA_MAX:g}) is not a power "
                "law plus a constant on this range (read α as 'flat' or 'faster than any power'); a "
                "CI at a bound is cut by it, not by the data; a poor fit (rms log residual > "
                f"{POOR_FIT_RMSE_LOG:g}) misses the seed means by more than their scatter. Check the "
                "plot before reading α.",
                "",
            ]
            if any(r["fit_flag"] for r in records)
            else []
        ),
    ]
