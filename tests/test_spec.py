"""Bad input never starts Ray: one line on stderr naming the field or file, exit 2, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import scalesweep, write_spec

from orchestrator.spec.cells import cell_key, expand
from orchestrator.spec.schema import SpecError, load_spec

GOOD = {
    "name": "bad-input",
    "trainable": "template",
    "fixed": {"task": "copy", "model": "transformer", "epochs": 5},
    "axes": {"embed_dim": [16], "n_train": [4, 8]},
    "search": {"samples_per_cell": 1, "space": {"lr": {"loguniform": [1e-3, 1e-2]}}},
    "metric": {"name": "test_error"},
    "storage": {"results": "results", "tracking_uri": None},
}


def _with(**changes) -> dict:
    spec = {k: (dict(v) if isinstance(v, dict) else v) for k, v in GOOD.items()}
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = spec
        for p in parents:
            node = node[p]
        if value is _DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return spec


_DELETE = object()

CASES = {
    "unknown key": (_with(colour="blue"), "colour: unknown key"),
    "wrong type": (_with(seeds="three"), "seeds:"),
    "empty axis": (
        _with(axes={"embed_dim": [16], "n_train": []}),
        "axes: n_train: expected a non-empty list",
    ),
    "unknown trainable": (
        _with(trainable="nope"),
        "trainable: expected an installed trainable (incontext, synthetic, template) or "
        "package.module:function, got 'nope'",
    ),
    "unknown task": (_with(fixed={"task": "juggling", "model": "transformer"}), "fixed.task:"),
    "unknown model": (_with(fixed={"task": "copy", "model": "abacus"}), "fixed.model:"),
    "unknown config key": (_with(fixed={"task": "copy", "wingspan": 3}), "fixed.wingspan:"),
    "unknown metric": (
        _with(metric={"name": "happiness"}),
        "metric.name: 'happiness' is not reported",
    ),
    "curve on a non-axis": (
        _with(
            curves=[{"kind": "sample_complexity", "x": "lr", "y": "test_error", "threshold": 0.1}]
        ),
        "curves.0.x: 'lr' is not an axis",
    ),
    "bad distribution": (
        _with(search={"space": {"lr": {"loguniform": [0, 1]}}}),
        "search.space.lr",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_spec_is_one_line_exit_2(tmp_path: Path, case: str, command: str) -> None:
    spec, expected = CASES[case]
    path = write_spec(tmp_path / "spec.yaml", spec)
    proc = scalesweep(command, str(path), cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0] and "spec.yaml" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()


def test_yaml_that_does_not_parse(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text("name: x\naxes: [1, 2\n")
    proc = scalesweep("run", "spec.yaml", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "spec.yaml: not valid YAML at line" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_missing_file(tmp_path: Path) -> None:
    proc = scalesweep("run", "nowhere.yaml", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == "error: nowhere.yaml: no such file; expected a sweep spec YAML file"
    )


def test_set_overrides_and_validate_ok(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "spec.yaml", GOOD)
    spec = load_spec(path, ["fixed.epochs=7", "search.samples_per_cell=3"])
    assert spec.fixed["epochs"] == 7 and spec.total_trials == 2 * 3
    proc = scalesweep("validate", str(path), cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and "2 cells × 1 samples = 2 trials" in proc.stdout
    with pytest.raises(SpecError, match="--set fixed.epochs: expected key=value"):
        load_spec(path, ["fixed.epochs"])


def test_cells_cover_the_grid_in_axis_order() -> None:
    cells = expand({"embed_dim": [32, 128], "n_train": [4, 8, 16], "vo_identity": [False, True]})
    assert len(cells) == 12
    assert cells[0].key == "embed_dim=32,n_train=4,vo_identity=false"
    assert cells[-1].key == "embed_dim=128,n_train=16,vo_identity=true"
    assert len({c.key for c in cells}) == 12
    assert (
        cell_key(
            {"n_train": 8, "embed_dim": 32, "vo_identity": True, "lr": 0.1},
            ["embed_dim", "n_train", "vo_identity"],
        )
        == "embed_dim=32,n_train=8,vo_identity=true"
    )


def test_quickstart_spec_validates() -> None:
    from orchestrator.spec.plan import plan_sweep

    plan = plan_sweep(load_spec(Path(__file__).parent.parent / "sweeps" / "quickstart.yaml"))
    assert plan.spec.name == "quickstart" and plan.mode == "min" and len(plan.cells) == 28


def test_validating_the_shipped_sweeps_and_sizing_their_packs_imports_no_torch() -> None:
    """A spec is checked in a fraction of a second, and a sweep's driver starts without torch (seconds and
    ~300 MB to import): validation, the driver's modules and the pack sizes (from the built-ins' parameter
    counts) all stay clear of it."""
    code = (
        "import glob, sys\n"
        "from orchestrator.spec.plan import plan_sweep\n"
        "from orchestrator.spec.schema import load_spec\n"
        "plans = [plan_sweep(load_spec(f)) for f in sorted(glob.glob('sweeps/*.yaml'))]\n"
        "assert all(plan.pack_sizes for plan in plans)\n"
        "import orchestrator.cli, orchestrator.tune.run, orchestrator.tune.trial\n"
        "print(len(plans), 'torch' in sys.modules)"
    )
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(len(list((repo / "sweeps").glob("*.yaml")))), "False"]
