"""The template trainable: stacking, config, reports, checkpoints, template machinery, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import (
    assert_config_error,
    assert_restore_continues_identically,
    reports_of,
    run_with_member_1_diverging,
    values,
)

from trainables import ConfigError, Report, get_trainable, seed_mean
from trainables.stacked.adam import Adam
from trainables.template import metrics, resolve, train
from trainables.template.config import task_of
from trainables.template.recurrent import LSTM, RNN
from trainables.template.sampling import generate, injective_draws
from trainables.template.tasks import (
    NAMED_TASKS,
    Template,
    Vocab,
    make_task,
    parse_templates,
    random_templates,
)
from trainables.template.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(
    embed_dim=16,
    heads=1,
    dim_head=8,
    n_train=24,
    batch_size=10,
    epochs=6,
    n_test=48,
    test_alphabet=64,
    eval_every=3,
)


def run(config: dict[str, Any]) -> list[Report]:
    return reports_of(train, config)


@pytest.mark.parametrize(
    "model,task",
    [
        ("transformer", "copy"),
        ("transformer", "same_different"),
        ("mlp", "copy"),
        ("mlp", "same_different"),
        ("mlp_xxt", "aba_abb"),
        ("rnn", "copy"),
        ("lstm", "aabb_abab"),
    ],
)
def test_stacked_members_equal_separate_runs(model: str, task: str) -> None:
    config = {**SMALL, "model": model, "task": task, "kq_identity": True, "vo_identity": True}
    stacked = run({**config, "seeds": 3, "seed": 5})[-1]
    assert [row.seed for row in stacked.rows] == [5, 6, 7]
    for s in range(3):
        alone = run({**config, "seeds": 1, "seed": 5 + s})[-1]
        assert [row.seed for row in alone.rows] == [5 + s]
        assert set(alone.rows[0].metrics) == set(stacked.rows[s].metrics)
        for name in stacked.rows[s].metrics:
            assert values(stacked, name)[s] == pytest.approx(values(alone, name)[0], abs=1e-5), (
                name,
                s,
            )


@pytest.mark.parametrize("decoupled,wd", [(False, 0.0), (False, 0.01), (True, 0.01)])
def test_stacked_adam_matches_torch(decoupled: bool, wd: float) -> None:
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(2, 7, generator=gen)
    grads = [torch.randn(2, 7, generator=gen) for _ in range(20)]
    mine = start.clone()
    opt = Adam([mine], lr=[1e-2, 1e-2], weight_decay=[wd, wd], decoupled=decoupled)
    ref = start.clone().requires_grad_()
    ref_opt = (torch.optim.AdamW if decoupled else torch.optim.Adam)(
        [ref], lr=1e-2, weight_decay=wd
    )
    for g in grads:
        opt.step([g], torch.tensor([True, True]))
        ref.grad = g.clone()
        ref_opt.step()
    torch.testing.assert_close(mine, ref.detach(), rtol=1e-6, atol=1e-7)


def test_per_member_lr_and_diverged_member_does_not_poison_others() -> None:
    config = {**SMALL, "task": "same_different", "epochs": 4, "eval_every": 1}
    trainer, final = run_with_member_1_diverging(Trainer, config)
    alone = run({**config, "seeds": 1})[-1]
    assert seed_mean(final.rows, "test_loss") == pytest.approx(
        seed_mean(alone.rows, "test_loss"), abs=1e-5
    )
    assert all(
        torch.isfinite(p).all() for p in trainer.stack.params
    )  # quarantined: zeroed, not NaN


def test_resolve_fills_defaults_and_coerces_cli_strings() -> None:
    cfg = resolve(
        {
            "embed_dim": "64",
            "kq_identity": "true",
            "lr": "3e-4",
            "epochs": 10.0,
            "task": "same_different",
        }
    )
    assert (
        cfg["embed_dim"] == 64 and cfg["kq_identity"] is True and cfg["lr"] == pytest.approx(3e-4)
    )
    assert cfg["epochs"] == 10 and cfg["model"] == "transformer" and cfg["dim_head"] == 64
    assert resolve(cfg) == cfg


@pytest.mark.parametrize(
    "config,key,fragment",
    [
        ({"widht": 3}, "widht", "unknown key"),
        ({"embed_dim": "wide"}, "embed_dim", "integer"),
        ({"embed_dim": 0}, "embed_dim", "≥ 1"),
        ({"embed_dim": True}, "embed_dim", "integer"),
        ({"lr": 0}, "lr", "> 0"),
        ({"embed_std": -0.5}, "embed_std", "> 0"),
        ({"embed_std": "big"}, "embed_std", "number"),
        ({"kq_identity": "maybe"}, "kq_identity", "true or false"),
        ({"task": "sort"}, "task", "'copy'"),
        ({"model": "cnn"}, "model", "'transformer'"),
        ({"readout": "mean"}, "readout", "'cls'"),
        ({"optimizer": "sgd"}, "optimizer", "'adamw'"),
        ({"task": "same_different", "n_train": 1}, "n_train", "at least 2"),
    ],
)
def test_resolve_rejects_bad_configs(config: dict[str, Any], key: str, fragment: str) -> None:
    assert_config_error(resolve, config, key, fragment)


def test_registered_definition_and_metric_directions() -> None:
    definition = get_trainable("template")
    assert definition.train is train and definition.resolve is resolve
    assert metrics({"task": "copy"}) == {
        "train_loss": "min",
        "test_loss": "min",
        "test_error": "min",
        "test_acc": "max",
    }
    assert metrics({"task": "same_different"}) == {
        "train_loss": "min",
        "test_loss": "min",
        "test_error": "min",
    }


def test_report_structure() -> None:
    config = {**SMALL, "task": "copy", "seeds": 2, "epochs": 7, "eval_every": 3}
    reports = run(config)
    assert [r.epoch for r in reports] == [3, 6, 7]
    declared = metrics(config)
    seed = resolve(config)["seed"]
    for r in reports:
        assert isinstance(r.epoch, int)
        assert [(row.member, row.seed, row.diverged) for row in r.rows] == [
            (0, seed, False),
            (0, seed + 1, False),
        ]
        assert list(r.members()) == [0]
        for row in r.rows:
            assert (
                set(row.metrics) == set(declared) and row.curves is None
            )  # the template has no curves
            assert all(type(v) is float for v in row.metrics.values())
            assert row.metrics["test_acc"] == pytest.approx(1 - row.metrics["test_error"])
        for name in declared:
            assert seed_mean(r.rows, name) == pytest.approx(sum(values(r, name)) / 2, rel=1e-6)


@pytest.mark.parametrize("model", ["transformer", "mlp"])
def test_restore_mid_training_continues_to_identical_final_metrics(model: str) -> None:
    config = {
        **SMALL,
        "model": model,
        "task": "same_different",
        "seeds": 2,
        "epochs": 8,
        "eval_every": 2,
    }
    assert_restore_continues_identically(train, config, save_at=4, last=8)


def test_vocab_alphabets_are_disjoint_and_test_samples_use_only_test_symbols() -> None:
    task = make_task(list(NAMED_TASKS["aba_abb"]))
    vocab = Vocab.for_task(task, n_train=8, n_val=5, n_test=30)
    ranges = [range(*r) for r in (vocab.train_range, vocab.val_range, vocab.test_range)]
    assert len(vocab.wildcards) == 2 and vocab.size == 2 + 8 + 5 + 30
    assert all(not set(a) & set(b) for i, a in enumerate(ranges) for b in ranges[i + 1 :])
    gen = torch.Generator().manual_seed(0)
    x, y = generate(task, vocab, 500, vocab.test_range, gen)
    assert x.shape == (500, 3) and ((x >= vocab.test_range[0]) & (x < vocab.test_range[1])).all()
    # αβα → +1 exactly when the first and last symbols are equal; α ≠ β always (injective)
    assert (x[:, 0] != x[:, 1]).all()
    assert torch.equal(y, torch.where(x[:, 0] == x[:, 2], 1.0, -1.0))
    counts = torch.stack([(y == 1).sum(), (y == -1).sum()])
    assert (counts - 250).abs().max() < 50  # multinomial over uniform template probabilities


def test_injective_draws_are_distinct_and_uniform() -> None:
    draws = injective_draws(20000, 3, lo=10, hi=14, gen=torch.Generator().manual_seed(1))
    assert ((draws >= 10) & (draws < 14)).all()
    assert (
        (draws[:, 0] != draws[:, 1]).all()
        and (draws[:, 1] != draws[:, 2]).all()
        and (draws[:, 0] != draws[:, 2]).all()
    )
    freq = torch.bincount(draws[:, 2] - 10, minlength=4).float() / 20000
    assert (freq - 0.25).abs().max() < 0.02


def test_copy_labels_are_the_substituted_symbol() -> None:
    task = make_task(list(NAMED_TASKS["copy"]))
    vocab = Vocab.for_task(task, n_train=16, n_val=0, n_test=100)
    x, y = generate(task, vocab, 64, vocab.train_range, torch.Generator().manual_seed(0))
    assert torch.equal(x[:, 0], y) and ((y >= 1) & (y < 17)).all()


def test_equivalent_templates_rejected_and_explicit_templates_parsed() -> None:
    with pytest.raises(ValueError, match="equivalent"):
        make_task([Template(("a", "b", "a"), 1.0), Template(("b", "a", "b"), -1.0)])
    templates, probs = parse_templates(
        [{"tokens": "a b A", "label": "b", "prob": 3}, {"tokens": "a a A", "label": "A", "prob": 1}]
    )
    task = make_task(templates, probs)
    assert task.label_kind == "symbolic" and task.probs == (0.75, 0.25)
    vocab = Vocab.for_task(task, n_train=4, n_val=0, n_test=4)
    x, y = generate(task, vocab, 200, vocab.train_range, torch.Generator().manual_seed(0))
    regular_a = vocab.index("A")
    assert (x[:, 2] == regular_a).all()
    same = x[:, 0] == x[:, 1]
    assert torch.equal(y[same], torch.full_like(y[same], regular_a)) and torch.equal(
        y[~same], x[~same, 1]
    )


def test_random_templates_are_distinct_balanced_and_seeded() -> None:
    templates = random_templates(n_templates=7, n_wildcards=3, n_regular=2, length=5, seed=3)
    assert len({t.pattern() for t in templates}) == 7 and all(len(t.tokens) == 5 for t in templates)
    assert sorted(t.label for t in templates) == [-1.0] * 3 + [1.0] * 4
    assert templates == random_templates(7, 3, 2, 5, seed=3) != random_templates(7, 3, 2, 5, seed=4)
    cfg = resolve(
        {
            "task": "random",
            "n_templates": 7,
            "n_wildcards": 3,
            "n_regular": 2,
            "length": 5,
            "template_seed": 3,
        }
    )
    assert list(task_of(cfg).templates) == templates


def test_resolve_custom_and_random_task_keys() -> None:
    cfg = resolve(
        {
            "templates": json.dumps(
                [{"tokens": "a b a", "label": 1}, {"tokens": "a b b", "label": -1}]
            )
        }
    )
    assert cfg["task"] == "custom" and resolve(cfg) == cfg
    assert cfg["templates"][0] == {"tokens": "a b a", "label": 1.0, "prob": 0.5}
    bad = [
        (
            {"templates": [{"tokens": "a b a", "label": 1}, {"tokens": "b a b", "label": -1}]},
            "templates",
            "equivalent",
        ),
        (
            {"task": "copy", "templates": [{"tokens": "a", "label": "a"}]},
            "templates",
            "task=custom",
        ),
        ({"task": "custom"}, "templates", "list of templates"),
        ({"task": "copy", "n_templates": 3}, "n_templates", "task=random"),
        (
            {"task": "random", "n_templates": 9, "n_wildcards": 2, "length": 2},
            "n_templates",
            "distinct",
        ),
        (
            {"templates": [{"tokens": "a b", "label": 1}, {"tokens": "a b c", "label": -1}]},
            "templates",
            "same length",
        ),
    ]
    for config, key, fragment in bad:
        with pytest.raises(ConfigError) as info:
            resolve(config)
        assert info.value.key == key and fragment in str(info.value), config


def test_stacked_lstm_and_rnn_match_their_torch_definitions() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 10, (1, 6, 4), generator=gen)
    lstm = LSTM(vocab_size=10, symbolic=False, embed_dim=8)
    p = lstm.layout.named(lstm.layout.init([gen]))
    ref = torch.nn.LSTM(8, 8, batch_first=True)
    with torch.no_grad():
        for name, value in (
            ("weight_ih_l0", p["w_ih"][0].T),
            ("weight_hh_l0", p["w_hh"][0].T),
            ("bias_ih_l0", p["b_ih"][0]),
            ("bias_hh_l0", p["b_hh"][0]),
        ):
            getattr(ref, name).copy_(value)
        _, (h, _) = ref(p["emb"][0][x[0]])  # zero initial state
        torch.testing.assert_close(
            lstm.forward(p, x)[0], (h[0] @ p["out_w"][0] + p["out_b"][0]).squeeze(-1)
        )
        rnn = RNN(vocab_size=10, symbolic=False, embed_dim=8)
        q = rnn.layout.named(rnn.layout.init([gen]))
        i2h = torch.cat(
            [q["w_in"][0], q["w_h"][0]]
        )  # the paper's Linear(2H, H) on [embedding; hidden]
        hidden = torch.zeros(6, 8)
        for t in range(4):
            hidden = torch.relu(
                torch.cat([q["emb"][0][x[0, :, t]], hidden], dim=1) @ i2h + q["b"][0]
            )
        torch.testing.assert_close(
            rnn.forward(q, x)[0], (hidden @ q["out_w"][0] + q["out_b"][0]).squeeze(-1)
        )


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "trainables", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def test_cli_jsonl_prints_one_json_object_per_report() -> None:
    out = _cli(
        "template",
        "task=copy",
        "model=transformer",
        "embed_dim=16",
        "n_train=8",
        "epochs=4",
        "seeds=2",
        "n_test=32",
        "test_alphabet=32",
        "--jsonl",
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4]
    declared = metrics({"task": "copy"})
    for line in lines:
        assert set(line) == {"epoch", "rows", *declared}
        report = Report.from_wire(line)
        assert [(row.member, row.seed, row.diverged, row.curves) for row in report.rows] == [
            (0, 0, False, None),
            (0, 1, False, None),
        ]
        assert set(report.rows[0].metrics) == set(report.rows[1].metrics) == set(declared)
        for name in declared:
            assert line[name] == pytest.approx(sum(values(report, name)) / 2, rel=1e-9)


def test_cli_accepts_templates_as_json() -> None:
    templates = json.dumps([{"tokens": "a b A", "label": "a"}, {"tokens": "a a A", "label": "A"}])
    out = _cli(
        "template",
        f"templates={templates}",
        "model=lstm",
        "embed_dim=8",
        "n_train=8",
        "epochs=2",
        "n_test=16",
        "test_alphabet=16",
        "--jsonl",
    )
    assert out.returncode == 0, out.stderr
    assert "test_acc" in json.loads(out.stdout.splitlines()[-1])


EQUIVALENT = json.dumps([{"tokens": "a b a", "label": 1}, {"tokens": "b a b", "label": -1}])


@pytest.mark.parametrize(
    "args,key",
    [
        (["template", "widht=3"], "widht"),
        (["template", "epochs=ten"], "epochs"),
        (["nosuch"], "trainable"),
        (["template", "task=sort"], "task"),
        (["template", f"templates={EQUIVALENT}"], "templates"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(args: list[str], key: str) -> None:
    out = _cli(*args)
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {key}: ") and "expected" in lines[0]


def test_every_model_the_config_accepts_exists_and_every_model_is_accepted() -> None:
    from trainables.template.config import MODEL_NAMES
    from trainables.template.models import MODELS

    assert sorted(MODEL_NAMES) == sorted(MODELS)
