"""A variants axis: named partial configs, one cell each per combination of the other axes, the names in
Parquet and the curves, and the trainable never sees the axis itself."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import scalesweep, write_spec

from orchestrator.cli import main
from orchestrator.spec.plan import plan_sweep, trainable_config
from orchestrator.spec.schema import dump_spec, parse_spec

SPEC = {
    "name": "variants",
    "trainable": "synthetic",
    "fixed": {"epochs": 3, "size": 1.0, "noise": 0.0},
    "axes": {
        "model": {
            "variants": {"small": {}, "big": {"size": 8.0}, "big-fast": {"size": 8.0, "rate": 2.0}}
        },
        "lr": [1e-3, 1e-2],
    },
    "search": {"algorithm": "grid-only"},
    "report_every_s": 0,
    "curves": [{"kind": "scaling_law", "x": "lr", "y": "test_loss", "by": ["model"]}],
    "storage": {"results": "results", "tracking_uri": None},
}


def test_a_variants_spec_expands_to_one_cell_per_variant_and_other_value() -> None:
    plan = plan_sweep(parse_spec(SPEC))
    assert [c.key for c in plan.cells] == [
        "model=small,lr=0.001",
        "model=small,lr=0.01",
        "model=big,lr=0.001",
        "model=big,lr=0.01",
        "model=big-fast,lr=0.001",
        "model=big-fast,lr=0.01",
    ]
    configs = {c.key: trainable_config(plan.spec, plan.trial_config(c, [{}])) for c in plan.cells}
    assert configs["model=big-fast,lr=0.01"] == {
        "epochs": 3,
        "size": 8.0,
        "noise": 0.0,
        "rate": 2.0,
        "lr": 0.01,
    }
    assert configs["model=small,lr=0.001"]["size"] == 1.0, "fixed, where the variant sets nothing"
    assert "model" in plan.trial_config(plan.cells[0], [{}]), "the name stays in the trial's config"
    assert parse_spec(yaml.safe_load(dump_spec(parse_spec(SPEC)))) == parse_spec(SPEC), (
        "as run, read back"
    )


@pytest.mark.parametrize(
    ("axis", "expected"),
    [
        ({"variants": {"big": {"lr": 1.0}}}, "axes.model.variants.big.lr: lr is an axis"),
        (
            {"variants": {"big": {"sizee": 1.0}}},
            "axes.model.variants.big.sizee: unknown key; did you mean 'size'?",
        ),
        ({"variants": {}}, "axes.model: expected {variants: {mlp: {model: mlp}, transformer: {}}}"),
        ({"variants": {"big": 3}}, "axes.model.variants.big: expected a name and a mapping"),
    ],
)
def test_a_bad_variant_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], axis: dict, expected: str
) -> None:
    spec = {**SPEC, "axes": {**SPEC["axes"], "model": axis}}
    assert main(["validate", str(write_spec(tmp_path / "s.yaml", spec))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err


def test_a_variants_sweep_records_and_draws_the_names(tmp_path: Path) -> None:
    proc = scalesweep("run", str(write_spec(tmp_path / "s.yaml", SPEC)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    root = tmp_path / "results" / "variants"
    trials = pd.read_parquet(root / "trials.parquet")
    assert sorted(set(trials.model)) == ["big", "big-fast", "small"] and len(trials) == 6
    loss = trials.groupby("model").final_test_loss.mean()
    assert loss["big-fast"] < loss["big"] < loss["small"], (
        "each variant trained with its own values"
    )
    table = pd.read_parquet(root / "curves" / "scaling_law.parquet")
    assert set(table.model) == {"small", "big", "big-fast"}


@pytest.mark.parametrize(
    ("name", "fixed"),
    [("noise", {"noise": 0.0}), ("rate", {})],
    ids=["set in fixed", "a key of the trainable"],
)
def test_a_variants_axis_named_after_a_config_key_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, fixed: dict
) -> None:
    """Its name never reaches the trainable, so the key would silently keep its fixed or default value."""
    axes = {k if k != "model" else name: v for k, v in SPEC["axes"].items()}
    spec = {**SPEC, "fixed": {"epochs": 3, **fixed}, "axes": axes}
    assert main(["validate", str(write_spec(tmp_path / "s.yaml", spec))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"axes.{name}: {name} is a config key" in err, err
