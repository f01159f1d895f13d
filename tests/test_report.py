"""The figure specs in sweeps/ and `scalesweep report`: every spec validates; a shrunk copy of one
runs end to end and its report carries the n* table, the plots and the compute used."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import scalesweep

from orchestrator.cli import main
from orchestrator.spec.schema import load_spec

SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"
FIGURES = ["copy_inverse_scaling", "same_different", "aba_abb", "random_templates"]


@pytest.mark.parametrize("spec", sorted(SWEEPS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_spec_in_sweeps_validates(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(spec)]) == 0
    assert ": ok — " in capsys.readouterr().out


@pytest.mark.parametrize("figure", FIGURES)
def test_every_figure_has_a_full_and_a_small_spec_with_a_question(figure: str) -> None:
    for name in (figure, f"{figure}-small"):
        assert load_spec(SWEEPS / f"{name}.yaml").description.strip(), name


@pytest.fixture(scope="module")
def shrunk_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """copy_inverse_scaling-small cut to 2 widths × 2 n × VO on/off, 6 epochs, no MLflow."""
    cwd = tmp_path_factory.mktemp("report")
    shrink = [
        "fixed.epochs=6",
        "fixed.eval_every=3",
        "axes.embed_dim=[16,32]",
        "axes.n_train=[4,16]",
        "search.samples_per_cell=1",
        "scheduler.asha=null",
        "storage.tracking_uri=null",
    ]
    proc = scalesweep(
        "run",
        str(SWEEPS / "copy_inverse_scaling-small.yaml"),
        *[a for s in shrink for a in ("--set", s)],
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return cwd / "results" / "copy-inverse-scaling-small"


def test_report_in_the_sweep_dir_has_the_question_n_star_table_compute_and_inlined_plots(
    shrunk_sweep: Path,
) -> None:
    assert main(["report", str(shrunk_sweep)]) == 0
    md = (shrunk_sweep / "report.md").read_text()
    assert "**Question.** Copy task" in md
    assert "| embed_dim | vo_identity | n* [CI] | smooth n* [CI] | seeds |" in md
    assert re.search(r"\| 16 \| false \| (> 16|\d+) \[", md)
    assert "| completed | pruned | errored | diverged |\n|---|---|---|---|\n| 8 | 0 | 0 | 0 |" in md
    assert re.search(r"trial time: [\d,]+ s summed over trials", md)
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links and all((shrunk_sweep / link).is_file() for link in links)
    page = (shrunk_sweep / "report.html").read_text()
    assert (
        page.count('src="data:image/png;base64,') == len(links)
        and "curves/" not in page.split("<pre>")[0]
    )
    assert "<th>n* [CI]</th>" in page and "<pre><code>name: copy-inverse-scaling-small" in page


def test_report_to_a_file_copies_the_plots_beside_it(shrunk_sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "docs" / "copy.md"
    assert main(["report", str(shrunk_sweep), "-o", str(out)]) == 0
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", out.read_text())
    assert links and all("/" not in link and (out.parent / link).is_file() for link in links)
    assert all(link.startswith("copy-") for link in links) and out.with_suffix(".html").is_file()


@pytest.mark.parametrize(
    "args", [["report", "{tmp}"], ["report", "{tmp}/missing"], ["report", "{spec}"]]
)
def test_report_on_a_dir_that_is_not_a_sweep_exits_2_with_one_line(
    args: list[str], tmp_path: Path
) -> None:
    argv = [a.format(tmp=tmp_path, spec=SWEEPS / "quickstart.yaml") for a in args]
    proc = scalesweep(*argv, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "not a sweep" in proc.stderr
