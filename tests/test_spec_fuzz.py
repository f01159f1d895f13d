"""Any spec file and any ``--set``, valid or not, is either accepted (exit 0) or refused in one line (exit 2):
never a traceback. Specs are generated valid, then mutated the ways people get them wrong (wrong types,
mixed lists, typos in keys, missing fields, huge numbers, odd strings, broken YAML, bytes that are not
UTF-8); a few valid ones then run to completion on the session's local Ray."""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from orchestrator.cli import main

NAMES = st.from_regex(r"[a-z0-9][a-z0-9-]{0,30}", fullmatch=True)
AXIS_VALUES = {  # synthetic's keys an axis may sweep, with values it accepts
    "size": st.one_of(st.integers(0, 64), st.floats(0, 64, allow_nan=False)),
    "rate": st.floats(0.01, 2, allow_nan=False),
    "noise": st.floats(0, 0.1, allow_nan=False),
    "diverge": st.booleans(),
}
SPACES = st.sampled_from(
    [
        {"loguniform": [1e-4, 1e-2]},
        {"uniform": [1e-3, 1e-1]},
        {"choice": [0.001, 1e-2]},
        {"choice": [1, 0.01]},  # an int and a float: coerced to floats
    ]
)
WEIRD = st.one_of(  # values a field should not hold, or holds only at the edge
    st.none(),
    st.booleans(),
    st.integers(-(10**40), 10**40),
    st.sampled_from([0, -1, 2**63, 10**30, float("inf"), float("-inf"), float("nan"), 1e308, -0.0]),
    st.floats(),
    st.text(max_size=30),
    st.text(st.characters(codec="utf-8"), min_size=90, max_size=320),
    st.lists(st.one_of(st.integers(), st.text(max_size=5), st.booleans()), max_size=4),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)
BOMB = "[" + ", ".join(f"&l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)) + "]"
BOMB = BOMB.replace("*l0", "lol")
"""Lists of ten aliases of the list before, eight deep: 10**8 values once expanded (a "billion laughs")."""
TRAINABLES = [
    "template",
    "incontext",
    "nope",
    "math:pi",
    "os:nothing",
    {"command": "python none.py"},
]
STRAY = "[]{}:&*!|>'\"%@`\x00\x85\ufeff#-"
PATHS = [
    "name",
    "trainable",
    "description",
    "seeds",
    "fixed",
    "fixed.epochs",
    "fixed.lr",
    "fixed.sleep_s",
    "axes",
    "axes.size",
    "axes.rate",
    "search",
    "search.algorithm",
    "search.samples_per_cell",
    "search.seed",
    "search.space",
    "search.space.lr",
    "search.space.lr.choice",
    "search.space.lr.loguniform",
    "metric.name",
    "metric.mode",
    "scheduler.asha",
    "scheduler.asha.grace_period",
    "scheduler.asha.reduction_factor",
    "resources.cpu",
    "resources.gpu",
    "resources.members_per_trial",
    "resources.max_concurrent_trials",
    "storage.results",
    "curves",
    "max_failures",
    "checkpoint_every_s",
    "report_every_s",
    "limits.max_trials",
    "limits.max_seeds",
]


@st.composite
def valid_specs(
    draw: st.DrawFn,
    max_values: int = 3,
    max_samples: int = 2,
    keys: tuple[str, ...] = tuple(AXIS_VALUES),
) -> dict[str, Any]:
    """A spec on the synthetic trainable that validates: few cells, few epochs, no MLflow."""
    names = draw(st.lists(st.sampled_from(sorted(keys)), min_size=1, max_size=2, unique=True))
    axes = {
        n: draw(
            st.lists(
                AXIS_VALUES[n],
                min_size=1,
                max_size=min(max_values, 2 if n == "diverge" else 9),
                unique_by=repr,
            )
        )
        for n in names
    }
    for n, values in axes.items():  # 1 and 1.0 are one value of a float column
        if any(isinstance(v, float) for v in values) and len(set(values)) < len(values):
            axes[n] = values[:1]
    algorithm = draw(st.sampled_from(["optuna", "random", "grid-only"]))
    search: dict[str, Any] = {"algorithm": algorithm}
    if algorithm != "grid-only":
        search |= {
            "samples_per_cell": draw(st.integers(1, max_samples)),
            "space": {"lr": draw(SPACES)},
        }
    return {
        "name": draw(NAMES),
        "trainable": "synthetic",
        "fixed": {"epochs": draw(st.integers(1, 3))},
        "axes": axes,
        "search": search,
        "seeds": draw(st.integers(1, 2)),
        "metric": {"name": "test_loss"},
        "storage": {"tracking_uri": None},
    }


def _set(spec: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = spec
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value


@st.composite
def mutated(draw: st.DrawFn, spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with one of the mistakes people make in a spec's structure."""
    spec = yaml.safe_load(yaml.safe_dump(spec))  # a deep copy
    how = draw(st.sampled_from(["weird", "mixed", "unknown", "missing", "trainable"]))
    if how == "trainable":  # another trainable, whose keys the synthetic axes are not
        spec["trainable"] = draw(st.sampled_from(TRAINABLES))
    elif how == "weird":
        _set(spec, draw(st.sampled_from(PATHS)), draw(WEIRD))
    elif how == "mixed":
        axis = draw(st.sampled_from(sorted(spec["axes"])))
        spec["axes"][axis].append(draw(st.sampled_from(["abc", "1e-2", True, 3, [1, 2], None])))
    elif how == "unknown":
        path = draw(st.sampled_from(PATHS))
        typo = draw(st.sampled_from([path + "s", path[:-1], path + "_", path.replace("s", "z")]))
        _set(spec, typo, 1)
    else:
        del spec[draw(st.sampled_from(sorted(spec)))]
    return spec


@st.composite
def spec_files(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A spec file's bytes, and whether it is a valid spec left as generated."""
    spec = draw(valid_specs())
    how = draw(st.sampled_from(["valid", "structure", "structure", "text", "bytes"]))
    if how == "valid":
        return yaml.safe_dump(spec, sort_keys=False).encode(), True
    if how == "structure":
        return yaml.safe_dump(
            draw(mutated(spec)), sort_keys=False, allow_unicode=True
        ).encode(), False
    text = yaml.safe_dump(spec, sort_keys=False)
    at = draw(st.integers(0, len(text)))
    if how == "text":  # broken YAML: cut, a stray character, a line given twice, aliases, a tab
        edit = draw(st.sampled_from(["cut", "insert", "repeat", "alias", "bomb", "tab"]))
        if edit == "cut":
            text = text[:at]
        elif edit == "insert":
            text = text[:at] + draw(st.sampled_from(list(STRAY))) + text[at:]
        elif edit == "repeat":
            lines = text.splitlines(keepends=True)
            line = lines[draw(st.integers(0, len(lines) - 1))]
            text = text + line
        elif edit == "alias":  # valid, unless sleep_s is an axis too
            text = text.replace("fixed:\n", "fixed:\n  sleep_s: &s 0.0\n  noise: *s\n", 1)
        elif edit == "bomb":
            text = text.replace("fixed:\n", f"fixed:\n  lr: {BOMB}\n", 1)
        else:
            text = text.replace("  ", "\t", 1)
        return text.encode(), False
    data = text.encode()
    latin = draw(st.sampled_from([b"\xff", b"\xc3", b"\xe9t\xe9", b"\x80\x80"]))
    return data[:at] + latin + data[at:], False


OVERRIDES = st.lists(
    st.one_of(
        st.builds(
            lambda path, value: f"{path}={value}",
            st.sampled_from(PATHS),
            st.one_of(
                WEIRD.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()),
                st.sampled_from(
                    ["[unclosed", "{a: 1, a: 2}", "!!python/object:os.system x", "*a", "1e-2"]
                ),
                st.text(max_size=12),
            ),
        ),
        st.text(max_size=20),  # not even key=value
    ),
    max_size=2,
)


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for every example (hypothesis runs them all within one call of the test)."""
    return tmp_path_factory.mktemp("fuzz")


@settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(file=spec_files(), overrides=OVERRIDES)
def test_any_spec_is_accepted_or_refused_in_one_line(
    file: tuple[bytes, bool], overrides: list[str], workdir: Path
) -> None:
    data, valid = file
    path = workdir / "spec.yaml"
    path.write_bytes(data)
    code, out, err = _cli("validate", str(path), *(f"--set={o}" for o in overrides))
    assert "Traceback" not in out + err
    event(f"exit {code}")
    notes = [line for line in err.splitlines() if line.startswith("warning: ")]  # a value clipped
    errors = [line for line in err.splitlines() if not line.startswith("warning: ")]
    if code == 0:
        assert "ok —" in out and not errors
    else:
        assert code == 2, (code, err)
        assert len(errors) == 1 and errors[0].startswith("error: ") and len(notes) <= 1, err
    if valid and not overrides:
        assert code == 0, err


@settings(max_examples=3, deadline=None, derandomize=True, phases=[Phase.generate])
@given(spec=valid_specs(max_values=2, max_samples=1, keys=("size", "rate", "noise")))
def test_valid_specs_run_to_completion(
    spec: dict[str, Any], workdir: Path, ray_session: None
) -> None:
    root = Path(tempfile.mkdtemp(dir=workdir))
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    code, out, err = _cli("run", str(path), "--results", str(root / "results"))
    assert code == 0, out + err
    trials = pq.read_table(root / "results" / spec["name"] / "trials.parquet")
    cells = math.prod(len(values) for values in spec["axes"].values())
    assert trials.num_rows == cells * spec["search"].get("samples_per_cell", 1)
