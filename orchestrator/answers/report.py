"""``scalesweep report``: one document per sweep, the question first, the answer's evidence after.

A sweep's answer is spread over ``spec.yaml``, ``trials.parquet`` and ``curves/``; a reviewer
wants one page to read, diff in git (markdown) or attach to a message (HTML with every image
inlined as a data URI, so the file travels alone). The fits themselves come from ``curves/``
(written by ``write_sweep_curves`` at the end of a run, or here when missing), so the report and
``scalesweep curves`` never disagree.
"""

from __future__ import annotations

import base64
import html
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from orchestrator.answers.curves import seed_points
from orchestrator.answers.tables import format_value, markdown_table
from orchestrator.answers.write import CURVES_DIR, write_sweep_curves
from orchestrator.spec.plan import SweepPlan, load_plan
from orchestrator.spec.schema import SpecError, spec_as_run
from orchestrator.store.parquet_io import read_table, reading
from orchestrator.store.results import STATUSES, TRIALS_FILE, load_metrics, load_trials, sweep_span

_PLOT_ORDER = ("sample_complexity_", "n_star_vs_", "scaling_law_")


@dataclass
class Sweep:
    """A finished (or partly run) sweep, as its results directory holds it."""

    root: Path
    plan: SweepPlan
    trials: pd.DataFrame

    @property
    def curves_dir(self) -> Path:
        return self.root / CURVES_DIR

    @contextmanager
    def reading_curves(self, path: Path) -> Iterator[None]:
        """A file of curves/ that cannot be read is a one-line error: ``scalesweep curves`` rewrites it."""
        with reading(path, f"rewrite it with `scalesweep curves {self.root}`"):
            yield

    def curve_table(self, name: str) -> pd.DataFrame | None:
        """``curves/<name>.parquet`` (None when the sweep's curves have none)."""
        path = self.curves_dir / f"{name}.parquet"
        if not path.exists():
            return None
        with self.reading_curves(path):
            return read_table(path).to_pandas()

    def plots(self) -> list[Path]:
        """PNGs in reading order: sample complexity, n* vs width, scaling laws, anything else."""

        def rank(p: Path) -> tuple[int, str]:
            return next(
                (i for i, pre in enumerate(_PLOT_ORDER) if p.name.startswith(pre)), 9
            ), p.name

        return sorted(self.curves_dir.glob("*.png"), key=rank)


def load_sweep(root: Path) -> Sweep:
    """The sweep in ``root``; a one-line SpecError when ``root`` holds none or no trial yet."""
    spec_file = root / "spec.yaml"
    if not spec_file.is_file():
        raise SpecError(
            f"{root}: not a sweep (expected {spec_file}); pass a results/<sweep> directory"
        )
    plan = load_plan(spec_file.parent)
    trials = load_trials(root)
    if trials.empty:
        raise SpecError(
            f"{root}: no trials recorded yet (expected {root / TRIALS_FILE}); run or resume it first"
        )
    sweep = Sweep(root, plan, trials)
    if plan.spec.curves and not (sweep.curves_dir / "summary.md").exists():
        write_sweep_curves(plan, root)
    return sweep


# ------------------------------------------------------------------------------ markdown


def _demoted(md: str) -> list[str]:
    """curves/summary.md one heading level down, to sit under the sweep's own title."""
    return [f"#{line}" if line.startswith("#") else line for line in md.splitlines()]


def _compute(sweep: Sweep) -> list[str]:
    """Trial counts by status, summed trial time (what a cluster bills) and the sweep's wall time."""
    spec, t = sweep.plan.spec, sweep.trials
    counts = t["status"].value_counts()
    seconds = float(t["seconds"].sum())
    resources = spec.resources
    billed = (
        f"{seconds * resources.cpu:,.0f} CPU-s"
        + (f", {seconds * resources.gpu:,.0f} GPU-s" if resources.gpu else "")
        + " reserved"
    )
    lines = [
        "## Trials and compute",
        "",
        f"{spec.n_cells} cells × {spec.samples_per_cell} sample(s) = {spec.total_trials} trials "
        f"of {spec.seeds} stacked seed(s); {len(t)} recorded.",
        "",
        *markdown_table(STATUSES, [[int(counts.get(s, 0)) for s in STATUSES]]),
        f"- trial time: {seconds:,.0f} s summed over trials ({billed}); median trial "
        f"{t['seconds'].median():.1f} s, longest {t['seconds'].max():.1f} s",
        f"- epochs trained: {int(t['epochs'].sum()):,} of {len(t) * sweep.plan.epochs:,} "
        "if every recorded trial had run to the end",
    ]
    if (wall := _wall(sweep)) is not None:
        lines.append(
            f"- wall: {wall:,.0f} s from the sweep's start to its last recorded trial "
            "(includes any time a stopped driver was down)"
        )
    return lines + [""]


def _wall(sweep: Sweep) -> float | None:
    """Seconds from the sweep's start to its last recorded trial (see :func:`sweep_span`)."""
    ended_at = sweep.trials["ended_at"] if "ended_at" in sweep.trials else ()
    started, ended = sweep_span(sweep.root, sweep.plan, ended_at)
    return None if started is None or ended is None else ended - started


def _values(sweep: Sweep) -> list[str]:
    """Per curve metric, the seed mean (min–max over seeds) at every cell's best trial."""
    plan = sweep.plan
    metrics = load_metrics(sweep.root)
    out: list[str] = []
    done: set[tuple[str, str, str]] = set()
    for curve in plan.spec.curves:
        if curve.x not in plan.axes or (curve.x, curve.y, curve.at) in done or metrics.empty:
            continue
        done.add((curve.x, curve.y, curve.at))
        pts = seed_points(sweep.trials, metrics, plan.axes, plan.metric, plan.modes, curve.at)
        rows = [a for a in plan.axes if a != curve.x and pts[a].nunique(dropna=False) > 1]
        stats = pts.groupby([*rows, curve.x], dropna=False)[curve.y].agg(["mean", "min", "max"])
        cell = stats.apply(lambda r: f"{r['mean']:.3f} ({r['min']:.2f}–{r['max']:.2f})", axis=1)
        wide = cell.unstack(curve.x).fillna("–") if rows else cell.to_frame().T
        xs = [format_value(x) for x in wide.columns]
        body = [
            [*(map(format_value, key if isinstance(key, tuple) else (key,)) if rows else ()), *row]
            for key, row in wide.iterrows()
        ]
        out += [
            f"### {curve.y} per cell ({curve.at} epoch of the best trial by {plan.metric})",
            "",
            f"Seed mean (min–max over {plan.spec.seeds} seeds); columns are {curve.x}.",
            "",
            *markdown_table([*rows, *xs], body),
        ]
    return out


def _missing_slopes(sweep: Sweep) -> list[str]:
    """Say so when a numeric by-axis gets no n* slope: fewer than two of its values reached n*."""
    table, slopes = sweep.curve_table("sample_complexity"), sweep.curve_table("scaling_slope")
    if table is None:
        return []
    fitted = set(map(tuple, slopes[["curve", "axis"]].to_numpy())) if slopes is not None else set()
    notes = []
    for curve, g in table.groupby("curve"):
        for axis in (a for a in sweep.plan.axes if a in g.columns and g[a].nunique() > 1):
            dtype = g[axis].dtype
            if (
                pd.api.types.is_numeric_dtype(dtype)
                and not pd.api.types.is_bool_dtype(dtype)
                and (curve, axis) not in fitted
            ):
                notes.append(
                    f"- {curve}: no slope of n* vs {axis}: fewer than two {axis} values "
                    "reached the threshold on the grid in any group"
                )
    return [*notes, ""] if notes else []


def sweep_markdown(sweep: Sweep, image: Callable[[Path], str]) -> list[str]:
    """One sweep's section; ``image`` maps a PNG under curves/ to the link the document uses."""
    spec = sweep.plan.spec
    lines = [
        f"# {spec.name}",
        "",
        f"**Question.** {spec.description or '(the spec has no description)'}",
        "",
        f"Trainable `{spec.trainable}`, metric `{sweep.plan.metric}` ({sweep.plan.mode}), "
        f"results in `{sweep.root}`.",
        "",
    ]
    plots = sweep.plots()
    if plots:
        lines += ["## Plots", ""] + [f"![{p.stem}]({image(p)})\n" for p in plots]
    summary = sweep.curves_dir / "summary.md"
    if summary.exists():
        with sweep.reading_curves(summary):
            text = summary.read_text()
        lines += _demoted(text) + _missing_slopes(sweep)
    lines += _values(sweep) + _compute(sweep)
    # Only the values the sweep used, leaf lists on one line and unicode kept: a spec a person can
    # read; the question is above.
    spec_text = yaml.safe_dump(
        {k: v for k, v in spec_as_run(spec).items() if k != "description"},
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=None,
        width=110,
    ).rstrip()
    return lines + ["## Spec as run", "", "```yaml", spec_text, "```", ""]


def write_report(dirs: list[Path], out: Path | None = None) -> list[Path]:
    """Write report.md + report.html into each DIR, or one document for all DIRs at ``out``.

    With ``out`` the PNGs are copied beside it as ``<stem>-<png>`` (``<stem>-<k>-<png>`` for the
    k-th of several sweeps), so the markdown links stay valid wherever the folder goes.
    """
    if out is not None and out.suffix != ".md":
        raise SpecError(f"-o {out}: expected a markdown file name ending in .md")
    sweeps = [load_sweep(Path(d)) for d in dirs]
    if out is None:
        written = []
        for s in sweeps:
            written += _write(
                s.root / "report.md", sweep_markdown(s, lambda p, s=s: str(p.relative_to(s.root)))
            )
        return written
    out.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    for k, s in enumerate(sweeps, 1):
        prefix = out.stem if len(sweeps) == 1 else f"{out.stem}-{k}"

        def copy(p: Path, prefix: str = prefix) -> str:
            shutil.copyfile(p, out.parent / f"{prefix}-{p.name}")
            return f"{prefix}-{p.name}"

        lines += sweep_markdown(s, copy)
    return _write(out, lines)


def _write(md_path: Path, lines: list[str]) -> list[Path]:
    text = "\n".join(lines).rstrip() + "\n"
    md_path.write_text(text)
    html_path = md_path.with_suffix(".html")
    html_path.write_text(to_html(text, md_path.parent))
    return [md_path, html_path]


# ------------------------------------------------------------------ markdown → HTML (our subset)

_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;line-height:1.45}"
    "table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ccc;"
    "padding:.2em .5em;text-align:left}th{background:#f3f3f3}img{max-width:100%}"
    "pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.85em}"
)


def _inline(text: str) -> str:
    """Escape, then `code`, **bold** and [links](url): the inline markup the report emits."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(part, quote=False))
        out.append(re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', s))
    return "".join(out)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def to_html(md: str, base: Path) -> str:
    """Headings, paragraphs, lists, pipe tables, fenced code and images (inlined from ``base``)."""
    lines, body, i = md.splitlines(), [], 0
    title = next((ln[2:] for ln in lines if ln.startswith("# ")), "report")
    block = re.compile(r"(#{1,6} |\||- |```|!\[)")
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next(
                (k for k in range(i + 1, len(lines)) if lines[k].startswith("```")), len(lines)
            )
            body.append(f"<pre><code>{html.escape(chr(10).join(lines[i + 1 : end]))}</code></pre>")
            i = end + 1
            continue
        if m := re.match(r"(#{1,6}) (.*)", line):
            body.append(f"<h{len(m[1])}>{_inline(m[2])}</h{len(m[1])}>")
        elif m := re.fullmatch(r"!\[([^\]]*)\]\(([^)]+)\)", line.strip()):
            body.append(f'<p><img alt="{html.escape(m[1])}" src="{_data_uri(base / m[2])}"></p>')
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            head = "".join(f"<th>{_inline(c)}</th>" for c in rows[0])
            cells = [
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows[2:]
            ]
            body.append(
                f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(cells)}</tbody></table>"
            )
            continue
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            body.append(f"<ul>{''.join(items)}</ul>")
            continue
        elif line.strip():
            para = [line]
            while i + 1 < len(lines) and lines[i + 1].strip() and not block.match(lines[i + 1]):
                i += 1
                para.append(lines[i])
            body.append(f"<p>{_inline(' '.join(para))}</p>")
        i += 1
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
