"""The incontext trainable: task samplers and oracle, baselines, curriculum, model, stacking, reports,
checkpoints, config and CLI; and that a small model learns in context (docs/science.md, In-context
logistic regression)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import (
    assert_config_error,
    assert_restore_continues_identically,
    curve_mean,
    one_torch_thread,
    reports_of,
    run_with_member_1_diverging,
    values,
)
from scipy import optimize, stats
from scipy.special import expit, log_expit

from trainables import Report, get_trainable, seed_mean
from trainables.incontext import curves, metrics, resolve, train
from trainables.incontext.curriculum import Curriculum
from trainables.incontext.evaluation import EvalSet, least_squares_prefix_fits, logistic_prefix_fits
from trainables.incontext.model import GPT2
from trainables.incontext.tasks import TASKS
from trainables.incontext.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(
    d=8,
    k=12,
    embed_dim=16,
    depth=2,
    heads=2,
    batch_size=8,
    steps=6,
    eval_every=3,
    n_eval=16,
    lr=1e-3,
)
# Learns in context within a few hundred CPU steps (measured at 500 steps, seeds 0 and 1:
# test_acc 0.75 / 0.73 against chance 0.5; baseline 0.80, oracle 0.94; 0.55 / 0.61 at step 250).
LEARNS = dict(
    task="logistic_regression",
    d=2,
    k=8,
    embed_dim=32,
    depth=2,
    heads=2,
    batch_size=32,
    lr=3e-3,
    steps=500,
    eval_every=250,
    n_eval=256,
    seeds=2,
)

# The defaults' optimisation (lr 1e-3, the garg curriculum every 50 steps) leaves the initial loss plateau
# of d = 4, k = 32 at width 64 (docs/science.md, Leaving the plateau). Seed 2 measured, as 1 seed and stacked
# with 3 others alike: test_acc 0.49 / 0.51 / 0.68 / 0.77 at steps 100-400 (0.81 from step 600); at
# TART's lr 1e-4 without a curriculum every seed stays at chance for 1500 steps.
ESCAPES = dict(
    task="logistic_regression",
    d=4,
    k=32,
    embed_dim=64,
    depth=2,
    heads=2,
    steps=400,
    eval_every=200,
    seed=2,
)


def run(config: dict[str, Any]) -> list[Report]:
    return reports_of(train, config)


def closed_form_oracle_acc(d: int, alpha: float) -> float:
    """E[sigmoid(α·r·|z|)] with r = ‖g‖ ~ χ_d and z ~ N(0, 1), since ⟨x, w⟩ = α·‖g‖·z: a 2-D quadrature."""
    r = np.linspace(0, 12, 3001)[1:]
    z = np.linspace(0, 8, 8001)
    inner = np.trapezoid(
        expit(alpha * r[:, None] * z[None]) * 2 * stats.norm.pdf(z)[None], z, axis=1
    )
    return float(np.trapezoid(inner * stats.chi.pdf(r, d), r))


@pytest.mark.parametrize("d,research", [(4, 0.965), (16, 0.986)])
def test_oracle_accuracy_matches_closed_form_and_research(d: int, research: float) -> None:
    exact = closed_form_oracle_acc(d, alpha=10.0)
    assert exact == pytest.approx(
        research, abs=1e-3
    )  # docs/science.md's oracle numbers (In-context logistic regression)
    batch = TASKS["logistic_regression"].sample(
        4000, 64, d, d, 10.0, torch.Generator().manual_seed(d)
    )
    oracle = ((torch.einsum("nkd,nd->nk", batch.x, batch.w) > 0).float() == batch.y).float()
    assert float(oracle.mean()) == pytest.approx(exact, abs=0.003)  # Monte Carlo, 256k labels


def test_baseline_approaches_oracle_when_k_much_larger_than_d() -> None:
    ev = EvalSet(
        TASKS["logistic_regression"],
        d=4,
        k=128,
        alpha=10.0,
        n=128,
        seed=0,
        l2=1.0,
        device=torch.device("cpu"),
    )
    oracle, baseline = ev.reference["oracle_acc"], ev.reference["baseline_acc"]
    assert float(baseline[0]) == pytest.approx(0.5, abs=0.1)  # no examples: w = 0 predicts 0
    assert float(baseline[-32:].mean()) == pytest.approx(
        float(oracle[-32:].mean()), abs=0.015
    )  # k ≥ 24·d
    assert float(baseline[4:8].mean()) < float(baseline[-32:].mean()) - 0.1


def test_logistic_baseline_is_the_l2_regularised_fit() -> None:
    gen = torch.Generator().manual_seed(3)
    batch = TASKS["logistic_regression"].sample(3, 10, 4, 4, 10.0, gen)
    x, y = batch.x.double(), batch.y.double()
    fitted = logistic_prefix_fits(x, y, l2=0.5)
    for n, k in [(0, 3), (1, 7), (2, 9)]:
        xs, ys = x[n, :k].numpy(), y[n, :k].numpy()

        def objective(w: np.ndarray, xs: np.ndarray = xs, ys: np.ndarray = ys) -> float:
            z = xs @ w
            return float(-(ys * log_expit(z) + (1 - ys) * log_expit(-z)).sum() + 0.25 * w @ w)

        w = optimize.minimize(objective, np.zeros(4), method="BFGS", options={"gtol": 1e-10}).x
        assert float(fitted[n, k]) == pytest.approx(float(x[n, k].numpy() @ w), abs=1e-4)


def test_least_squares_baseline_is_min_norm_and_exact_from_k_equals_d() -> None:
    gen = torch.Generator().manual_seed(4)
    batch = TASKS["linear_regression"].sample(2, 8, 5, 5, 1.0, gen)
    x, y = batch.x.double(), batch.y.double()
    fitted = least_squares_prefix_fits(x, y)
    for n, k in [(0, 0), (0, 3), (1, 5), (1, 7)]:
        w = torch.linalg.pinv(x[n, :k]) @ y[n, :k] if k else torch.zeros(5, dtype=torch.float64)
        assert float(fitted[n, k]) == pytest.approx(float(x[n, k] @ w), abs=1e-8)
    ev = EvalSet(
        TASKS["linear_regression"],
        d=8,
        k=12,
        alpha=10.0,
        n=512,
        seed=0,
        l2=1.0,
        device=torch.device("cpu"),
    )
    mse = ev.reference["baseline_mse"]
    for k in (0, 4, 7):  # min-norm fit on k < d examples: expected error / d = (d - k) / d
        assert float(mse[k]) == pytest.approx((8 - k) / 8, abs=0.1)
    assert float(mse[8:].max()) < 1e-8


def test_curriculum_presets_and_inactive_coordinates() -> None:
    tart = Curriculum("tart", d=16, k=258)
    assert [tart.at(t) for t in (0, 999, 1000, 3000, 8000, 30000)] == [
        (4, 18),
        (4, 18),
        (8, 48),
        (16, 108),
        (16, 258),
        (16, 258),
    ]
    garg = Curriculum("garg", d=20, k=41)
    assert [garg.at(t) for t in (0, 1999, 2000, 30000, 40000)] == [
        (5, 11),
        (5, 11),
        (6, 13),
        (20, 41),
        (20, 41),
    ]
    assert Curriculum("tart", d=16, k=258, every=10).at(25) == (12, 78)
    assert Curriculum("none", d=16, k=64).at(0) == (16, 64)
    batch = TASKS["logistic_regression"].sample(5, 7, 6, 2, 10.0, torch.Generator().manual_seed(0))
    assert (batch.x[:, :, 2:] == 0).all() and (batch.x[:, :, :2] != 0).all()


def test_model_prediction_at_position_i_sees_no_later_label_or_input() -> None:
    model = GPT2(d=3, k=6, embed_dim=16, depth=2, heads=2)
    gen = torch.Generator().manual_seed(0)
    p = model.layout.named(model.layout.init([gen, gen]))
    x, y = (
        torch.randn(2, 5, 6, 3, generator=gen),
        torch.randint(0, 2, (2, 5, 6), generator=gen).float(),
    )
    out = model.forward(p, x, y)
    for i in range(6):
        x2, y2 = x.clone(), y.clone()
        y2[:, :, i:] = 1 - y2[:, :, i:]
        x2[:, :, i + 1 :] = torch.randn(x2[:, :, i + 1 :].shape, generator=gen)
        changed = model.forward(p, x2, y2)
        torch.testing.assert_close(changed[:, :, : i + 1], out[:, :, : i + 1], rtol=0, atol=0)
        assert i == 5 or not torch.allclose(changed[:, :, i + 1 :], out[:, :, i + 1 :])


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def learned() -> list[Report]:
    with one_torch_thread():
        return run(LEARNS)


def test_small_model_learns_in_context_well_above_chance(learned: list[Report]) -> None:
    final = learned[-1]
    assert [row.diverged for row in final.rows] == [False, False]
    assert min(values(final, "test_acc")) > 0.65  # chance 0.5; 2 × 2048 scored predictions
    acc = curve_mean(final, "acc_by_k")
    assert (
        sum(acc[4:]) / 4 > acc[0] + 0.1
    )  # better with more examples in context: it learned in context
    assert seed_mean(final.rows, "test_acc") < seed_mean(final.rows, "oracle_acc")


def test_the_defaults_leave_the_loss_plateau_of_d4_k32_within_400_steps() -> None:
    on_plateau, left = (values(report, "test_acc")[0] for report in run(ESCAPES))
    assert on_plateau < 0.55, "chance is 0.5: at step 200 the model still predicts by the prior"
    assert left > 0.7, "the fitted logistic regression's is 0.85, the oracle's 0.96"


def test_report_structure_and_curves_on_the_final_report(learned: list[Report]) -> None:
    assert [r.epoch for r in learned] == [250, 500]
    declared = metrics(LEARNS)
    assert set(declared) == {"train_loss", "test_loss", "test_acc", "oracle_acc", "baseline_acc"}
    seed = resolve(LEARNS)["seed"]
    for r in learned:
        assert [(row.member, row.seed, row.diverged) for row in r.rows] == [
            (0, seed, False),
            (0, seed + 1, False),
        ]
        assert all(set(row.metrics) == set(declared) for row in r.rows)
    assert all(row.curves is None for row in learned[0].rows)  # curves on the last report only
    final = learned[-1]
    assert all(set(row.curves) == set(curves(LEARNS)) for row in final.rows)
    for curve, scalar in curves(LEARNS).items():
        assert all(len(row.curves[curve]) == LEARNS["k"] for row in final.rows)
        assert seed_mean(final.rows, scalar) == pytest.approx(
            sum(curve_mean(final, curve)) / LEARNS["k"], rel=1e-9
        )
        for row in final.rows:
            assert row.metrics[scalar] == pytest.approx(sum(row.curves[curve]) / LEARNS["k"])
    for name in declared:
        assert seed_mean(final.rows, name) == pytest.approx(sum(values(final, name)) / 2, rel=1e-9)
        assert all(type(v) is float for v in values(final, name))


@pytest.mark.parametrize("task", ["logistic_regression", "linear_regression"])
def test_stacked_members_equal_separate_runs(task: str) -> None:
    config = {**TINY, "task": task, "curriculum": "garg", "curriculum_every": 2}
    stacked = run({**config, "seeds": 3, "seed": 5})[-1]
    assert [row.seed for row in stacked.rows] == [5, 6, 7]
    for s, row in enumerate(stacked.rows):
        (own,) = run({**config, "seeds": 1, "seed": 5 + s})[-1].rows
        assert own.seed == row.seed
        assert set(own.metrics) == set(row.metrics) and set(own.curves) == set(row.curves)
        for name, value in row.metrics.items():
            assert value == pytest.approx(own.metrics[name], abs=1e-5), (name, s)
        for name, curve in row.curves.items():
            assert curve == pytest.approx(own.curves[name], abs=1e-5), (name, s)


def test_gradient_accumulation_takes_the_same_steps() -> None:
    config = {**TINY, "seeds": 2, "batch_size": 8}
    whole, accumulated = run(config)[-1], run({**config, "grad_accum": 4})[-1]
    assert [row.seed for row in accumulated.rows] == [row.seed for row in whole.rows]
    for name in whole.rows[0].metrics:
        assert values(accumulated, name) == pytest.approx(values(whole, name), abs=1e-5), name


def test_restore_mid_training_continues_to_identical_reports() -> None:
    config = {
        **TINY,
        "seeds": 2,
        "steps": 8,
        "eval_every": 2,
        "curriculum": "tart",
        "curriculum_every": 3,
    }
    assert_restore_continues_identically(train, config, save_at=4, last=8)


def test_resolve_fills_defaults_and_coerces_cli_strings() -> None:
    cfg = resolve({"d": "8", "alpha": "5", "lr": "3e-4", "curriculum": "tart"})
    assert cfg["d"] == 8 and cfg["alpha"] == 5.0 and cfg["lr"] == pytest.approx(3e-4)
    assert (cfg["embed_dim"], cfg["depth"], cfg["heads"], cfg["batch_size"]) == (
        256,
        12,
        8,
        128,
    )  # TART's
    assert resolve(cfg) == cfg
    assert get_trainable("incontext").resolve is resolve
    assert set(metrics({"task": "linear_regression"})) == {
        "train_loss",
        "test_loss",
        "test_mse",
        "baseline_mse",
    }


@pytest.mark.parametrize(
    "config,key,fragment",
    [
        ({"width": 3}, "width", "unknown key"),
        ({"d": 0}, "d", "≥ 1"),
        ({"k": "many"}, "k", "integer"),
        ({"lr": 0}, "lr", "> 0"),
        ({"alpha": -1}, "alpha", "> 0"),
        ({"task": "sorting"}, "task", "'logistic_regression'"),
        ({"curriculum": "fast"}, "curriculum", "'tart'"),
        ({"embed_dim": 30, "heads": 4}, "heads", "divisor of embed_dim"),
        ({"batch_size": 10, "grad_accum": 4}, "grad_accum", "divisor of batch_size"),
        ({"task": "linear_regression", "alpha": 3}, "alpha", "task=logistic_regression"),
        ({"curriculum": "none", "curriculum_every": 100}, "curriculum_every", "with a curriculum"),
    ],
)
def test_resolve_rejects_bad_configs_naming_the_key(
    config: dict[str, Any], key: str, fragment: str
) -> None:
    assert_config_error(resolve, config, key, fragment)


def test_diverged_member_is_reported_and_does_not_poison_the_other() -> None:
    config = {**TINY, "steps": 4, "eval_every": 2}
    _, final = run_with_member_1_diverging(Trainer, config)
    assert all(math.isnan(v) for v in final.rows[1].curves["acc_by_k"])
    assert not any(math.isnan(v) for v in final.rows[0].curves["acc_by_k"])
    alone = run({**config, "seeds": 1})[-1]
    assert seed_mean(final.rows, "test_acc") == pytest.approx(
        seed_mean(alone.rows, "test_acc"), abs=1e-5
    )


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "trainables", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def test_cli_jsonl_prints_one_report_per_line() -> None:
    out = _cli(
        "incontext",
        "task=logistic_regression",
        "d=4",
        "k=8",
        "alpha=10",
        "embed_dim=16",
        "depth=1",
        "heads=2",
        "steps=4",
        "eval_every=2",
        "n_eval=8",
        "batch_size=4",
        "seeds=2",
        "--jsonl",
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["epoch"] for r in lines] == [2, 4]
    first, last = (Report.from_wire(line) for line in lines)
    assert [(row.member, row.seed) for row in last.rows] == [(0, 0), (0, 1)]
    assert all(row.curves is None for row in first.rows)
    assert all(len(row.curves["acc_by_k"]) == 8 for row in last.rows)
    assert lines[-1]["test_acc"] == pytest.approx(sum(values(last, "test_acc")) / 2, rel=1e-9)


def test_every_task_the_config_accepts_has_a_sampler() -> None:
    from trainables.incontext.config import CLASSIFICATION

    assert sorted(CLASSIFICATION) == sorted(TASKS)
