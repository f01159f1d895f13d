"""Bad input of every kind is one line on stderr naming the file and the field, exit 2, no traceback, for
``validate`` and ``run`` alike (run refuses before Ray starts and before a results directory exists)."""

from __future__ import annotations

import copy
import pickle
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import scalesweep, write_spec

from orchestrator.cli import main
from orchestrator.spec.plan import plan_sweep
from orchestrator.spec.schema import SpecError, dump_spec, load_spec, parse_spec, spec_as_run
from orchestrator.spec.yamlfile import YamlError, load
from trainables import ConfigError, Trainable

SPEC: dict[str, Any] = {
    "name": "hardening",
    "trainable": "synthetic",
    "fixed": {"epochs": 2},
    "axes": {"size": [1, 4]},
    "search": {"samples_per_cell": 2, "space": {"lr": {"loguniform": [1e-4, 1e-2]}}},
    "storage": {"results": "results", "tracking_uri": None},
}
BOMB = "\n".join(
    ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
)
"""A billion laughs: nine short lines that expand to 10**9 values."""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # results/ would be made here


def _spec(text: str | None = None, **changes: Any) -> str:
    """``spec.yaml`` in the working directory: ``text`` as given, or SPEC with top-level ``changes``."""
    Path("spec.yaml").write_text(text if text is not None else yaml.safe_dump({**SPEC, **changes}))
    return "spec.yaml"


def _refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one line ``scalesweep ARGV`` prints on stderr, after checking it exited 2 with nothing else."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not Path("results").exists()
    return err.strip()


COMMANDS = pytest.mark.parametrize("command", ["validate", "run"])


# 1. YAML 1.2 numbers, one type per column, every value checked against the trainable.


def test_numbers_read_as_yaml_12() -> None:
    assert load(
        "[0.001, 1e-2, 1E5, .5, -2, 0x1F, 0o17, 017, 10_000, 1:30, 2024-01-01, yes, '1e-2']"
    ) == [
        0.001,
        0.01,
        100000.0,
        0.5,
        -2,
        31,
        15,
        17,
        10000,
        "1:30",
        "2024-01-01",
        True,
        "1e-2",
    ]


def test_an_axis_and_a_choice_of_ints_and_floats_are_floats() -> None:
    path = _spec(
        "name: mixed\ntrainable: synthetic\naxes: {lr: [0.001, 1e-2], size: [1, 2.5]}\n"
        "search: {space: {rate: {choice: [1, 0.5e-1]}}}\n"
    )
    spec = load_spec(path, ["fixed.noise=1e-2"])
    assert spec.axes == {"lr": [0.001, 0.01], "size": [1.0, 2.5]}
    assert spec.search.space["rate"].choice == [1.0, 0.05] and spec.fixed["noise"] == 0.01
    assert all(type(v) is float for v in [*spec.axes["lr"], *spec.axes["size"]])


@COMMANDS
@pytest.mark.parametrize(
    "where,values,expected",
    [
        (
            "axes",
            [0.001, "abc"],
            "axes: lr: expected values of one type; got 0.001 (number) and 'abc' (string)",
        ),
        (
            "axes",
            [1, True],
            "axes: lr: expected values of one type; got 1 (number) and true (boolean)",
        ),
        (
            "choice",
            [0.001, "abc"],
            "search.space.lr: choice: expected values of one type; got 0.001",
        ),
    ],
)
def test_a_list_of_mixed_types_is_refused(
    capsys: pytest.CaptureFixture[str], command: str, where: str, values: list, expected: str
) -> None:
    if where == "axes":
        path = _spec(axes={"size": [1], "lr": values}, search={"algorithm": "grid-only"})
    else:
        path = _spec(search={"space": {"lr": {"choice": values}}})
    assert _refused(capsys, command, path).startswith(f"error: spec.yaml: {expected}")


@COMMANDS
@pytest.mark.parametrize(
    "changes,expected",
    [
        (
            {"axes": {"size": [1], "lr": [0.01, -1]}, "search": {}},
            "axes.lr: expected a value > 0, got -1.0",
        ),
        (
            {"search": {"space": {"lr": {"choice": [0.01, 0.1, -1.0]}}}},
            "search.space.lr: expected a value > 0",
        ),
        (
            {"search": {"space": {"lr": {"uniform": [-1, 1]}}}},
            "search.space.lr: expected a value > 0",
        ),
    ],
)
def test_every_value_a_trial_may_get_is_checked(
    capsys: pytest.CaptureFixture[str], command: str, changes: dict, expected: str
) -> None:
    assert expected in _refused(capsys, command, _spec(**changes))


def test_both_ends_of_a_range_are_checked_once_each() -> None:
    seen: list[Any] = []

    def resolve(config: dict[str, Any]) -> dict[str, Any]:
        seen.append(config.get("lr"))
        if config.get("lr", 0) > 0.5:
            raise ConfigError("lr", f"expected ≤ 0.5, got {config['lr']}")
        return dict(config)

    trainable = Trainable(
        train=lambda config, report: None, resolve=resolve, metrics={"loss": "min"}
    )
    spec = parse_spec(
        {**SPEC, "metric": {"name": "loss"}, "search": {"space": {"lr": {"uniform": [0.1, 0.9]}}}}
    )
    with pytest.raises(SpecError, match=r"^spec: search.space.lr: expected ≤ 0.5, got 0.9$"):
        plan_sweep(spec, trainable=trainable)
    assert 0.9 in seen and len(seen) <= 4  # the base config, the second size, both ends: no product


def test_a_key_given_twice_is_refused_with_its_line(capsys: pytest.CaptureFixture[str]) -> None:
    text = yaml.safe_dump(SPEC, sort_keys=False) + "seeds: 2\nseeds: 3\n"
    last = text.count("\n")
    assert _refused(capsys, "validate", _spec(text)) == (
        f"error: spec.yaml: line {last}: key 'seeds' given twice (first at line {last - 1}); "
        "expected each key once"
    )
    assert "key 'a' given twice" in _refused(
        capsys, "validate", _spec(), "--set", "fixed={a: 1, a: 2}"
    )


@COMMANDS
def test_an_alias_bomb_fails_in_milliseconds(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = _spec("bomb:\n  " + BOMB.replace("\n", "\n  ") + "\n" + yaml.safe_dump(SPEC))
    start = time.perf_counter()
    line = _refused(capsys, command, path)
    assert time.perf_counter() - start < 0.5
    assert (
        line
        == "error: spec.yaml: line 6: aliases expand this value to more than 100,000 values; expected a smaller spec"
    )
    with pytest.raises(YamlError, match="refers to the value that contains it"):
        load("a: &a [1, *a]")


def test_python_tags_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    line = _refused(
        capsys, "validate", _spec(), "--set", "fixed.epochs=!!python/object/apply:os.system [ls]"
    )
    assert (
        "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'"
        in line
    )


def test_the_spec_as_run_reads_back_the_same(tmp_path: Path) -> None:
    spec = parse_spec({**SPEC, "description": "1e-2", "fixed": {"epochs": 2, "noise": 1e-5}})
    again = parse_spec(load(dump_spec(spec)))
    assert (
        again == spec
        and again.description == "1e-2"
        and yaml.safe_load(dump_spec(spec))["description"] == "1e-2"
    )


def test_the_spec_as_run_for_a_reader_drops_nulls_that_say_nothing_and_keeps_those_that_do() -> (
    None
):
    spec = parse_spec({**SPEC, "scheduler": {"asha": {"grace_period": 2}}})
    shown = spec_as_run(spec)
    assert shown["search"]["space"] == {"lr": {"loguniform": [1e-4, 1e-2]}}
    assert shown["scheduler"] == {"asha": {"grace_period": 2, "reduction_factor": 3.0}}
    assert shown["storage"] == {"results": "results", "tracking_uri": None}, "null: no MLflow"
    assert shown["max_failures"] == 2 and "adaptive" not in shown, "defaults used are shown"


# 2. A trainable's ConfigError survives every way Ray moves or copies it; the mixed choice fails at validate.


def test_config_error_is_rebuilt_with_its_key_and_expectation() -> None:
    from ray import cloudpickle
    from ray.exceptions import RayTaskError

    err = ConfigError("lr", "expected a number, got 'abc'")
    for rebuilt in (
        pickle.loads(pickle.dumps(err)),
        cloudpickle.loads(cloudpickle.dumps(err)),
        copy.copy(err),  # as Ray Tune copies a trial's error before raising it
        type(err)(*err.args),
    ):
        assert (type(rebuilt), rebuilt.key, rebuilt.expected, str(rebuilt)) == (
            ConfigError,
            "lr",
            "expected a number, got 'abc'",
            "lr: expected a number, got 'abc'",
        )
    try:
        raise err
    except ConfigError as raised:
        dual = RayTaskError("trial", "traceback", raised).as_instanceof_cause()
    back = cloudpickle.loads(cloudpickle.dumps(copy.copy(dual)))
    assert isinstance(back, ConfigError) and back.key == "lr"


@pytest.mark.parametrize("trainable", ["synthetic", "template"])
def test_a_choice_of_a_number_and_a_word_fails_at_validate(
    capsys: pytest.CaptureFixture[str], trainable: str
) -> None:
    path = _spec(
        trainable=trainable,
        fixed={"epochs": 2} | ({"task": "copy"} if trainable == "template" else {}),
        axes={"n_train": [4]} if trainable == "template" else {"size": [1]},
        search={"space": {"lr": {"choice": [0.01, "abc"]}}},
    )
    assert "search.space.lr: choice: expected values of one type" in _refused(
        capsys, "validate", path
    )


# 3. One line for bad YAML in --set, bytes that are not UTF-8, a long name, epochs or steps of 0.


@COMMANDS
def test_bad_yaml_in_set(capsys: pytest.CaptureFixture[str], command: str) -> None:
    assert _refused(capsys, command, _spec(), "--set", "fixed.epochs=[unclosed") == (
        "error: --set fixed.epochs=[unclosed: not valid YAML at line 1, column 10: "
        "expected ',' or ']', but got '<stream end>'"
    )


@COMMANDS
def test_a_file_that_is_not_utf8(capsys: pytest.CaptureFixture[str], command: str) -> None:
    Path("spec.yaml").write_bytes(yaml.safe_dump(SPEC).encode() + b"description: caf\xe9\n")
    assert _refused(capsys, command, "spec.yaml") == (
        f"error: spec.yaml: line {len(yaml.safe_dump(SPEC).splitlines()) + 1}: byte 0xe9 is not UTF-8; "
        "expected a text file saved as UTF-8"
    )


@COMMANDS
def test_a_name_too_long_for_a_directory(capsys: pytest.CaptureFixture[str], command: str) -> None:
    assert _refused(capsys, command, _spec(name="a" * 300)) == (
        "error: spec.yaml: name: expected at most 100 characters (got 300)"
    )


@COMMANDS
@pytest.mark.parametrize(
    "trainable,fixed,axes,expected",
    [
        ("synthetic", {"epochs": 0}, {"size": [1]}, "fixed.epochs: expected a value ≥ 1, got 0"),
        ("template", {"epochs": 0}, {"n_train": [4]}, "fixed.epochs: expected a value ≥ 1, got 0"),
        ("incontext", {"steps": 0}, {"d": [2]}, "fixed.steps: expected a value ≥ 1, got 0"),
    ],
)
def test_no_training_at_all_is_refused(
    capsys: pytest.CaptureFixture[str],
    command: str,
    trainable: str,
    fixed: dict,
    axes: dict,
    expected: str,
) -> None:
    path = _spec(trainable=trainable, fixed=fixed, axes=axes, search={"algorithm": "grid-only"})
    assert _refused(capsys, command, path) == f"error: spec.yaml: {expected}"


# 4. Sizes bounded before anything is expanded; limits a user can raise.


@COMMANDS
def test_a_ten_million_cell_grid_is_refused_in_milliseconds(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    axes = {k: list(range(10)) for k in ("a", "b", "c", "d", "e", "f", "g")}
    path = _spec(axes=axes, search={"algorithm": "grid-only"})
    start = time.perf_counter()
    line = _refused(capsys, command, path)
    assert time.perf_counter() - start < 0.5
    assert line == (
        "error: spec.yaml: axes: 10 × 10 × 10 × 10 × 10 × 10 × 10 = 10,000,000 cells × 1 samples = "
        "10,000,000 trials; expected at most limits.max_trials (100,000): raise it to run more"
    )


def test_limits_can_be_raised(capsys: pytest.CaptureFixture[str]) -> None:
    path = _spec(limits={"max_trials": 3, "max_seeds": 1})
    assert "4 trials; expected at most limits.max_trials (3)" in _refused(capsys, "validate", path)
    assert main(["validate", path, "--set", "limits.max_trials=4"]) == 0
    assert "seeds: expected at most limits.max_seeds (1), got 2" in _refused(
        capsys, "validate", path, "--set", "limits.max_trials=4", "--set", "seeds=2"
    )
    assert main(["validate", _spec(seeds=2000, limits={"max_seeds": 5000})]) == 0


@pytest.mark.parametrize(
    "changes,expected",
    [
        ({"seeds": 10**30}, "seeds: expected at most limits.max_seeds (1,000), got 1,000,000"),
        ({"seeds": 1e30}, "seeds: expected an integer (got 1e+30)"),
        ({"search": {"samples_per_cell": 10**12}}, "expected at most limits.max_trials"),
        ({"search": {"seed": -1}}, "search.seed: expected a value ≥ 0 (got -1)"),
        ({"resources": {"cpu": float("inf")}}, "resources.cpu: expected a finite number (got inf)"),
        ({"axes": {"size": [1, 2**70]}}, "axes: size: expected integers within ±2**63"),
    ],
)
def test_numbers_out_of_range(
    capsys: pytest.CaptureFixture[str], changes: dict, expected: str
) -> None:
    assert expected in _refused(capsys, "validate", _spec(**changes))


# 5. Messages a reader can act on.


@pytest.mark.parametrize(
    "override,expected",
    [
        (
            "axes.size=[[1, 2]]",
            "axes.size.0: expected a number, a string or a boolean (got [1, 2])",
        ),
        ("trainable=5", "trainable: expected a string or a mapping (got 5)"),
        (
            "resources.members_per_trial=many",
            "resources.members_per_trial: expected an integer or auto (got 'many')",
        ),
        ("seed=3", "seed: unknown key; did you mean 'seeds'?"),
        (
            "search.space.lr={loguniformm: [1, 2]}",
            "search.space.lr.loguniformm: unknown key; did you mean 'loguniform'?",
        ),
        ("fixed.epoch=3", "fixed.epoch: unknown key; did you mean 'epochs'?"),
        (
            "fixed.learning_rate=3",
            "fixed.learning_rate: unknown key; expected one of ['diverge', 'epochs', 'fail_epoch', "
            "'lr', 'noise', 'rate', 'seed', 'seeds', 'size', 'sleep_s']",
        ),
        (
            "curves=[{kind: scaling_law, x: sise, y: test_loss}]",
            "curves.0.x: 'sise' is not an axis; did you mean 'size'?",
        ),
    ],
)
def test_messages_name_the_value_and_suggest_the_key(
    capsys: pytest.CaptureFixture[str], override: str, expected: str
) -> None:
    assert (
        _refused(capsys, "validate", _spec(), "--set", override) == f"error: spec.yaml: {expected}"
    )


ASHA = {"fixed": {"epochs": 40}, "scheduler": {"asha": {"grace_period": 10, "max_t": 40}}}


def test_an_epochs_override_clips_the_files_asha_fields_with_a_one_line_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate", _spec(**ASHA), "--set", "fixed.epochs=5"]) == 0
    warned = capsys.readouterr().err.splitlines()
    assert warned == [
        "warning: spec.yaml: scheduler.asha.max_t: 40 > fixed.epochs (5, from --set); using 5 "
        "(--set scheduler.asha.max_t=N sets it explicitly)",
        "warning: spec.yaml: scheduler.asha.grace_period: 10 > fixed.epochs (5, from --set); using 5 "
        "(--set scheduler.asha.grace_period=N sets it explicitly)",
    ]
    asha = plan_sweep(load_spec("spec.yaml", ["fixed.epochs=5"]), "spec.yaml").spec.scheduler.asha
    assert (asha.max_t, asha.grace_period) == (5, 5)


def test_a_trainables_default_epochs_clip_the_files_grace_period(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _spec(fixed={}, scheduler={"asha": {"grace_period": 30}})  # synthetic: 10 epochs
    assert plan_sweep(load_spec(path), path).spec.scheduler.asha.grace_period == 10
    assert (
        "grace_period: 30 > epochs (10, synthetic's default); using 10" in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "changes,overrides,expected",
    [
        (
            {"fixed": {"epochs": 5}, "scheduler": {"asha": {"grace_period": 10}}},
            [],
            "scheduler.asha.grace_period (10) > fixed.epochs (5); "
            "--set scheduler.asha.grace_period=5 fixes it",
        ),
        (
            ASHA,
            ["scheduler.asha.grace_period=50"],
            "scheduler.asha.grace_period (50, from --set) > scheduler.asha.max_t (40); "
            "--set scheduler.asha.grace_period=40 fixes it",
        ),
        (
            ASHA,
            ["fixed.epochs=5", "scheduler.asha={max_t: 8}"],
            "scheduler.asha.max_t (8, from --set scheduler.asha={max_t: 8}) > fixed.epochs "
            "(5, from --set); --set scheduler.asha.max_t=5 fixes it",
        ),
    ],
    ids=["both in the file", "the field by --set", "both by --set"],
)
def test_asha_fields_the_user_set_against_the_epochs_are_an_error_naming_both_and_the_fix(
    capsys: pytest.CaptureFixture[str], changes: dict, overrides: list[str], expected: str
) -> None:
    argv = [a for o in overrides for a in ("--set", o)]
    assert _refused(capsys, "validate", _spec(**changes), *argv) == f"error: spec.yaml: {expected}"


# The same, for real: a fresh process, its exit code and its stderr.


@pytest.mark.parametrize("case", ["bomb", "latin-1", "huge grid"])
def test_a_real_process_exits_2_with_one_line(tmp_path: Path, case: str) -> None:
    if case == "bomb":
        (tmp_path / "spec.yaml").write_text(
            "bomb:\n  " + BOMB.replace("\n", "\n  ") + "\n" + yaml.safe_dump(SPEC)
        )
    elif case == "latin-1":
        latin = b"description: caf\xe9\n" + yaml.safe_dump(SPEC).encode()
        (tmp_path / "spec.yaml").write_bytes(latin)
    else:
        write_spec(
            tmp_path / "spec.yaml", {**SPEC, "axes": {k: list(range(10)) for k in "abcdefg"}}
        )
    proc = scalesweep("run", "spec.yaml", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("error: spec.yaml: ")
    assert "Traceback" not in proc.stderr and not (tmp_path / "results").exists()
