"""Member packing: several configs of one cell trained as one stacked Tune trial, each still its own trial.

Real local Ray, real Optuna journal, real Parquet; the template trainable where results must match, the
synthetic one where only the orchestration is under test.
"""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pandas as pd
import pytest
from helpers import one_torch_thread, reports_of
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from ray import tune

from orchestrator.spec.plan import plan_sweep
from orchestrator.spec.schema import SpecError, parse_spec
from orchestrator.store.results import load_metrics, load_trials
from orchestrator.tune.run import run_sweep
from trainables import Report, Reporter
from trainables.template.training import Trainer

TINY = {
    "task": "copy",
    "model": "transformer",
    "depth": 1,
    "heads": 1,
    "embed_dim": 16,
    "dim_head": 8,
    "n_train": 8,
    "n_test": 64,
    "test_alphabet": 64,
    "epochs": 6,
    "eval_every": 2,
}


class StopAfter(Reporter):
    """Stops pack member ``member`` after the first report, as the driver's scheduler would."""

    def __init__(self, member: int) -> None:
        super().__init__()
        self.reports: list[Report] = []
        self._member = member

    def __call__(self, metrics: Report, state=None) -> None:
        self.reports.append(metrics)

    def stopped(self) -> set[int]:
        return {self._member}


def _alone(config: dict) -> list[Report]:
    return reports_of(lambda c, report: Trainer(c).run(report), config)


def test_a_packed_member_trains_exactly_as_it_would_alone_and_a_stopped_one_leaves_the_stack() -> (
    None
):
    members = [{"lr": 1e-3}, {"lr": 3e-3, "weight_decay": 0.01}, {"lr": 1e-2}]
    with one_torch_thread():
        reporter = StopAfter(member=1)
        Trainer({**TINY, "seeds": 2, "optimizer": "adamw", "members": members}).run(reporter)
        alone = [_alone({**TINY, "seeds": 2, "optimizer": "adamw", **m}) for m in members]
    assert [list(r.members()) for r in reporter.reports] == [[0, 1, 2], [0, 2], [0, 2]]
    for report in reporter.reports:
        for index, member in report.members().items():
            (own,) = [r for r in alone[index] if r.epoch == report.epoch]
            seeds = [(r.seed, r.diverged) for r in member.rows]
            assert seeds == [(r.seed, r.diverged) for r in own.rows] == [(0, False), (1, False)]
            for row, mine in zip(member.rows, own.rows):
                assert set(row.metrics) == set(mine.metrics)
                for metric, value in mine.metrics.items():
                    assert row.metrics[metric] == pytest.approx(value, abs=1e-5), (index, metric)
    assert len(reporter.reports[-1].rows) == 4, "member 1's rows are gone from the stack"


def test_members_may_differ_only_in_stackable_keys() -> None:
    with pytest.raises(
        SpecError, match=r"resources.members_per_trial: expected 1 or auto: .* 'batch_size'"
    ):
        plan_sweep(
            parse_spec(
                {
                    "name": "x",
                    "trainable": "template",
                    "fixed": TINY,
                    "axes": {"seed": [0]},
                    "search": {"samples_per_cell": 4, "space": {"batch_size": {"choice": [8, 16]}}},
                    "resources": {"members_per_trial": 4},
                }
            )
        )


def test_auto_packs_small_models_and_never_more_than_a_cell_needs() -> None:
    fixed = {k: v for k, v in TINY.items() if k != "embed_dim"}
    spec = {
        "name": "x",
        "trainable": "template",
        "fixed": fixed,
        "axes": {"embed_dim": [16, 2048]},
        "search": {"samples_per_cell": 8, "space": {"lr": {"loguniform": [1e-4, 1e-2]}}},
    }
    sizes = plan_sweep(parse_spec(spec)).pack_sizes
    assert sizes["embed_dim=16"] == 8 and sizes["embed_dim=2048"] < 8
    assert set(
        plan_sweep(parse_spec({**spec, "resources": {"members_per_trial": 3}})).pack_sizes.values()
    ) == {3}


def test_cells_are_handed_out_longest_first_and_in_declared_order_without_estimates() -> None:
    fixed = {k: v for k, v in TINY.items() if k not in ("embed_dim", "n_train")}
    axes = {"embed_dim": [16, 64], "n_train": [8, 64]}
    spec = {"name": "x", "trainable": "template", "fixed": fixed, "axes": axes}
    order = [c.key for c in plan_sweep(parse_spec(spec)).longest_first]
    assert order[0] == "embed_dim=64,n_train=64" and order[-1] == "embed_dim=16,n_train=8"
    # a trainable that estimates no step cost keeps the spec's order
    synthetic = {"name": "y", "trainable": "synthetic", "axes": {"size": [1, 4, 2]}}
    plan = plan_sweep(parse_spec(synthetic))
    assert plan.longest_first == plan.cells


def _sweep(root: Path, name: str, spec: dict) -> Path:
    plan = plan_sweep(parse_spec({"name": name, **spec}))
    return run_sweep(plan, results_root=str(root), tracking_uri=None).results_dir


@pytest.mark.usefixtures("ray_session")
def test_a_packed_sweep_records_the_same_per_member_metrics_as_an_unpacked_one(
    tmp_path: Path,
) -> None:
    spec = {
        "trainable": "template",
        "fixed": {k: v for k, v in TINY.items() if k != "n_train"},
        "axes": {"n_train": [8, 16]},
        "seeds": 2,
        "metric": {"name": "test_loss"},
        "search": {
            "algorithm": "random",
            "samples_per_cell": 3,
            "space": {"lr": {"loguniform": [1e-3, 1e-2]}, "weight_decay": {"uniform": [0, 0.1]}},
        },
    }
    unpacked = _sweep(tmp_path, "unpacked", {**spec, "resources": {"members_per_trial": 1}})
    packed = _sweep(tmp_path, "packed", {**spec, "resources": {"members_per_trial": 3}})
    keys = ["cell", "lr", "weight_decay", "epoch", "seed"]

    def table(root: Path) -> pd.DataFrame:
        trials = load_trials(root)
        assert len(trials) == 6 and set(trials.status) == {"completed"}
        return (
            load_metrics(root)
            .merge(trials[["trial_id", "cell", "lr", "weight_decay"]])
            .set_index(keys)
            .sort_index()
        )

    a, b = table(unpacked), table(packed)
    assert load_trials(packed).trial_id.str.contains("-m").all() and len(a) == len(b) == 6 * 3 * 2
    assert a.index.equals(b.index), (
        "the same configs (a seeded random search asks the same values either way)"
    )
    for metric in ("train_loss", "test_loss", "test_error"):
        assert (a[metric] - b[metric]).abs().max() <= 1e-5


@pytest.mark.usefixtures("ray_session")
def test_asha_stops_members_of_a_pack_which_record_them_pruned_and_drop_them(
    tmp_path: Path,
) -> None:
    spec = {
        "trainable": "synthetic",
        "fixed": {"epochs": 12, "sleep_s": 0.1},
        "axes": {"size": [1, 4]},
        "search": {"samples_per_cell": 8, "space": {"lr": {"loguniform": [1e-4, 1e-1]}}},
        "seeds": 2,
        "metric": {"name": "test_loss"},
        "scheduler": {"asha": {"grace_period": 2, "reduction_factor": 2}},
        "resources": {"members_per_trial": 4},
    }
    root = _sweep(tmp_path, "asha", spec)
    trials, metrics = load_trials(root), load_metrics(root)
    assert (
        len(trials) == 16
        and trials.trial_id.is_unique
        and trials.groupby("cell").size().eq(8).all()
    )
    pruned = trials[trials.status == "pruned"]
    assert len(pruned) >= 4 and (pruned.epochs < 12).all()
    assert set(trials.status) == {"completed", "pruned"}
    recorded = metrics.groupby("trial_id").epoch.max()
    assert (recorded.loc[trials.trial_id].values == trials.epochs.values).all(), (
        "nothing after a member's stop"
    )

    # Optuna: one trial per member, told once, in its cell's study
    storage = JournalStorage(JournalFileBackend(str(root / "studies" / "journal.log")))
    for study in storage.get_all_studies():
        told = optuna.load_study(study_name=study.study_name, storage=storage).trials
        mine = trials[trials.cell == study.study_name].set_index("trial_id")
        assert sorted(t.user_attrs["trial_id"] for t in told) == sorted(mine.index)
        for t in told:
            assert (
                t.state.name
                == {"completed": "COMPLETE", "pruned": "PRUNED"}[
                    mine.status[t.user_attrs["trial_id"]]
                ]
            )

    # each pack stopped training its stopped members: its last report's stack lacks those stopped 2+ reports before
    packs = tune.ExperimentAnalysis(str(root / "tune")).trials
    assert len(packs) == 4
    for pack in packs:
        last = Report.from_wire(pack.last_result)
        gone = [
            i
            for i in range(len(pack.config["members"]))
            if trials.set_index("trial_id").epochs[f"{pack.trial_id}-m{i}"] <= last.epoch - 2
        ]
        assert last.members() and not set(gone) & set(last.members())
        assert all(len(member.rows) == 2 for member in last.members().values()), (
            "each member has its 2 seeds"
        )
    assert any(not math.isnan(v) for v in trials.final_test_loss)
