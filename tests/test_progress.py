"""The live display: per-cell rows (running cells first, best metric in the sweep's direction) and
plain log lines when stdout is not a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from orchestrator.answers.progress import CELL_ROWS, Progress


def _row(trial_id: str, cell: str, value: float, status: str = "completed") -> dict:
    return {
        "trial_id": trial_id,
        "cell": cell,
        "status": status,
        "final_test_acc": value,
        "seconds": 1.5,
    }


def _render(progress: Progress) -> list[str]:
    console = Console(file=io.StringIO(), width=120)
    console.print(progress.table())
    return console.file.getvalue().splitlines()


def test_cells_show_in_grid_order_with_each_running_trials_epoch_metric_and_searched_values(
    capsys,
) -> None:
    progress = Progress(
        6,
        3,
        [_row("a", "n=16", 0.5), _row("b", "n=16", 0.7)],
        "test_acc",
        "max",
        tty=False,
        cells=["n=16", "n=32", "n=64"],
        searched=["lr"],
        horizon=100,
    )
    progress.trial_started("c", "n=32", {"n": 32, "lr": 0.0003})
    progress.trial_epoch("c", 40, 0.25)
    progress.trial_finished(_row("d", "n=16", 0.6))
    progress.trial_finished({**_row("e", "n=64", float("nan"), status="errored"), "error": "X"})
    lines = _render(progress)
    assert lines[0].split() == ["cell", "done", "best", "test_acc", "running"]
    assert lines[1].split() == ["n=16", "3/3", "0.7"], (
        "grid order; best is the max for a max metric"
    )
    assert lines[2].split() == ["n=32", "0/3", "-", "1"]
    assert lines[3].split() == ["epoch", "40/100", "test_acc", "0.25", "lr=0.0003"]
    assert lines[4].split() == ["n=64", "1/3", "-"]
    out = capsys.readouterr().out.splitlines()
    assert (
        len(out) == 2
        and out[0].startswith("[3/6")
        and "completed" in out[0]
        and "test_acc=0.6" in out[0]
    )


def test_every_errored_or_diverged_trial_gets_its_reason_in_one_line(capsys) -> None:
    progress = Progress(2, 1, [], "test_loss", "min", tty=False, searched=["lr"])
    error = "ValueError: n_train must be positive\n  (raised in trainables/template)"
    progress.trial_finished(
        {**_row("a", "n=64", float("nan"), "errored"), "error": error, "lr": 0.1}
    )
    progress.trial_finished({**_row("b", "n=8", float("nan"), "diverged"), "epochs": 7})
    errored, diverged = capsys.readouterr().out.splitlines()
    assert errored.endswith(
        "lr=0.1  — ValueError: n_train must be positive (raised in trainables/template)"
    )
    assert diverged.endswith("— every seed's test_loss went non-finite by epoch 7")


def test_a_sweep_with_many_cells_shows_a_bounded_table_with_a_pointer_to_status() -> None:
    rows = [_row(f"t{i}", f"n={i}", 0.1) for i in range(CELL_ROWS + 5)]
    progress = Progress(len(rows), 1, rows, "test_acc", "max", tty=False)
    lines = _render(progress)
    assert len([line for line in lines if line.startswith("n=")]) == CELL_ROWS
    assert "5 more cells; `scalesweep status DIR` lists all" in " ".join(" ".join(lines).split())
