"""Trial checkpoints are data: every type a trainable's state holds round-trips exactly, a file that would run
code when loaded is refused without running it, and a state that cannot be stored fails when it is saved,
naming where. The built-in trainables and a Tune trial resumed after a failure continue identically."""

from __future__ import annotations

import io
import json
import math
import pickle
import random
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import scalesweep, write_spec

from orchestrator.store.statefile import StateFileError, read_state, write_state
from trainables import Report, Reporter, run_trainable
from trainables.api import Trainable
from trainables.incontext import train as incontext_train
from trainables.synthetic import SYNTHETIC
from trainables.template import train as template_train

TORCH_DTYPES = [
    torch.bool,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.uint16,
    torch.uint32,
    torch.uint64,
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.complex32,
    torch.complex64,
    torch.complex128,
    torch.float8_e4m3fn,
    torch.float8_e5m2,
]
NUMPY_DTYPES = [
    "bool",
    "u1",
    "i1",
    "u2",
    "i2",
    "u4",
    "i4",
    "u8",
    "i8",
    "f2",
    "f4",
    "f8",
    "c8",
    "c16",
]


def round_trip(value: Any, tmp_path: Path) -> Any:
    path = tmp_path / "state.npz"
    write_state(path, {"state": value})
    return read_state(path)["state"]


def assert_same(got: Any, want: Any, where: str = "state") -> None:
    """Equal, and of the same types all the way down: dtypes, key order, tuples staying tuples."""
    if isinstance(want, dict):
        assert type(got) is dict, where
        assert list(got) == list(want), where
        for (gk, gv), (wk, wv) in zip(got.items(), want.items()):
            assert_same(gk, wk, f"{where} key")
            assert_same(gv, wv, f"{where}[{wk!r}]")
    elif isinstance(want, (list, tuple)):
        assert type(got) is type(want) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, torch.Tensor):
        assert type(got) is torch.Tensor and got.dtype == want.dtype, where
        assert got.device.type == "cpu" and got.shape == want.shape, where
        # bitwise: NaNs and float8 included
        assert (
            got.view(-1).view(torch.uint8).tolist()
            == want.detach().cpu().contiguous().view(-1).view(torch.uint8).tolist()
        ), where
    elif isinstance(want, (np.ndarray, np.generic)):
        assert type(got) is type(want) and got.dtype == want.dtype, where
        assert np.array_equal(got, want, equal_nan=want.dtype.kind in "fc"), where
    elif isinstance(want, float) and math.isnan(want):
        assert type(got) is float and math.isnan(got), where
    else:
        assert type(got) is type(want) and got == want, where


# --- round trip -----------------------------------------------------------------------------------


def test_python_values_round_trip_with_their_types_and_key_order(tmp_path: Path) -> None:
    state = {
        "epoch": 7,
        "none": None,
        "flags": [True, False],
        "text": "héllo",
        "blob": b"\x00\xffbytes",
        "empty": [b"", "", [], (), {}],
        "floats": [0.1, -0.0, 1e308, math.inf, -math.inf, math.nan],
        "big": [2**64 + 1, -(2**100), 2**63 - 1],
        "py_random": random.Random(3).getstate(),  # a tuple holding a 625-tuple of ints and None
        "tuples": ((1, "a"), ()),
        # non-str keys, as a torch optimizer's state_dict has; mixed keys keep their order
        "int_keys": {3: "c", 1: "a", 2: "b"},
        "mixed": {"b": 1, 0: 2, (1, "x"): 3, None: 4, 2.5: 5, True: 6},
        "$": {"$": "dict", "items": {}},  # a state that looks like the file's own tags
    }
    assert_same(round_trip(state, tmp_path), state)
    assert_same(round_trip([1, "two"], tmp_path), [1, "two"])  # any value, not only dicts
    ordered = OrderedDict([("z", 1), ("a", 2)])
    got = round_trip(ordered, tmp_path)
    assert type(got) is dict and list(got.items()) == [("z", 1), ("a", 2)]


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_numpy_arrays_and_scalars_of_every_numeric_dtype(tmp_path: Path, dtype: str) -> None:
    array = (np.arange(12).reshape(3, 4) % 3).astype(dtype)
    state = {
        "array": array,
        "fortran": np.asfortranarray(array),
        "strided": array[:, ::2],
        "zero_d": np.array(array.flat[1]),
        "empty": np.zeros((0, 5), dtype),
        "scalar": array.flat[2],  # a NumPy scalar (np.float32(...), np.int8(...), ...)
    }
    got = round_trip(state, tmp_path)
    assert_same(got, state)
    assert isinstance(got["scalar"], np.generic)


def test_numpy_generator_states_round_trip_and_continue_the_stream(tmp_path: Path) -> None:
    rngs = {name: np.random.Generator(getattr(np.random, name)(5)) for name in ("PCG64", "MT19937")}
    for rng in rngs.values():
        rng.standard_normal(3)
    state = {
        "bit_generators": {name: rng.bit_generator.state for name, rng in rngs.items()},
        "legacy": np.random.RandomState(2).get_state(),  # a tuple with an array of uint32
    }
    got = round_trip(state, tmp_path)
    assert_same(got, state)
    for name, rng in rngs.items():
        again = np.random.Generator(getattr(np.random, name)())
        again.bit_generator.state = got["bit_generators"][name]
        assert np.array_equal(again.standard_normal(5), rng.standard_normal(5))


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=str)
def test_torch_tensors_of_every_dtype(tmp_path: Path, dtype: torch.dtype) -> None:
    base = torch.arange(-6, 6, dtype=torch.float64).reshape(3, 4)
    tensor = base.to(dtype) if dtype is not torch.bool else base > 0
    state = {
        "tensor": tensor,
        "zero_d": tensor[1, 2].clone(),
        "transposed": tensor.t(),  # not contiguous
        "empty": tensor[:0],
    }
    assert_same(round_trip(state, tmp_path), state)


def test_torch_states_as_trainables_hold_them(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    nan = torch.tensor([1.0, math.nan, math.inf])
    state = {
        "model": model.state_dict(),  # an OrderedDict of tensors: comes back a dict
        "opt": opt.state_dict(),  # int keys, a list of param groups
        "gen": torch.Generator().manual_seed(3).get_state(),
        "grad": torch.ones(2, requires_grad=True) * 2,
        "param": torch.nn.Parameter(torch.ones(2)),
        "nan": nan,
        "conj": torch.tensor([1 + 2j]).conj(),
    }
    got = round_trip(state, tmp_path)
    assert got["opt"]["param_groups"] == opt.state_dict()["param_groups"]
    assert (
        list(got["opt"]["state"]) == [0, 1]
        and got["opt"]["state"][0]["step"].dtype == torch.float32
    )
    for key in ("model", "gen", "nan"):
        assert_same(got[key], dict(state[key]) if key == "model" else state[key])
    assert got["grad"].requires_grad is False and torch.equal(got["grad"], torch.full((2,), 2.0))
    assert type(got["param"]) is torch.Tensor and torch.equal(got["param"], torch.ones(2))
    assert torch.equal(got["conj"], torch.tensor([1 - 2j]))
    opt2 = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=1e-2)
    opt2.load_state_dict(got["opt"])  # torch takes it back as it came


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_tensors_on_a_gpu_come_back_on_the_cpu(tmp_path: Path) -> None:
    state = {"w": torch.randn(3, 3, device="cuda").to(torch.bfloat16), "i": torch.arange(3).cuda()}
    got = round_trip(state, tmp_path)
    assert got["w"].device.type == "cpu" and got["w"].dtype == torch.bfloat16
    assert torch.equal(got["w"], state["w"].cpu()) and torch.equal(got["i"], state["i"].cpu())


def test_a_state_without_tensors_never_imports_torch(tmp_path: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "from orchestrator.store.statefile import read_state, write_state\n"
        f"write_state({str(tmp_path / 's.npz')!r}, {{'state': {{'w': np.ones(3), 'e': 2}}}})\n"
        f"got = read_state({str(tmp_path / 's.npz')!r})['state']\n"
        "assert got['e'] == 2 and got['w'].sum() == 3\n"
        "assert 'torch' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_writes_are_atomic_and_the_file_is_readable_with_plain_tools(tmp_path: Path) -> None:
    path = tmp_path / "state.npz"
    write_state(path, {"state": {"w": np.arange(3)}, "history": [{"epoch": 1}]})
    write_state(path, {"state": {"w": np.arange(4)}, "history": []})  # replaces it whole
    assert [p.name for p in tmp_path.iterdir()] == ["state.npz"]  # no temporary left behind
    with zipfile.ZipFile(path) as zf:
        tree = json.loads(zf.read("state.json"))
    assert tree["parts"]["history"] == []
    with np.load(path, allow_pickle=False) as npz:
        assert np.array_equal(npz["0"], np.arange(4))


# --- unsupported values fail at save ----------------------------------------------------------------


class Foo:
    pass


@pytest.mark.parametrize(
    "state,message",
    [
        (
            {"opt": [1, 2, Foo()]},
            r"checkpoint state\['opt'\]\[2\]: cannot store a Foo; expected dicts",
        ),
        ({"a": {3: {"b": {1, 2}}}}, r"checkpoint state\['a'\]\[3\]\['b'\]: cannot store a set"),
        ({"gen": torch.Generator()}, r"checkpoint state\['gen'\]: cannot store a Generator"),
        (
            {"obj": np.array([None])},
            r"checkpoint state\['obj'\]: cannot store an array of Python objects",
        ),
        (
            {"sparse": torch.eye(2).to_sparse()},
            r"checkpoint state\['sparse'\]: cannot store a sparse_coo",
        ),
        ({"f": lambda: 1}, r"checkpoint state\['f'\]: cannot store a function"),
        ({frozenset(): 1}, r"checkpoint state\[frozenset\(\)\]: cannot store a frozenset"),
    ],
)
def test_an_unsupported_value_fails_at_save_naming_where_it_is(
    tmp_path: Path, state: Any, message: str
) -> None:
    path = tmp_path / "state.npz"
    with pytest.raises(TypeError, match=message):
        write_state(path, {"state": state})
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_state_that_contains_itself_fails_at_save(tmp_path: Path) -> None:
    loop: list[Any] = [1]
    loop.append({"again": loop})
    with pytest.raises(
        TypeError, match=r"state\[1\]\['again'\]: cannot store a list that contains itself"
    ):
        write_state(tmp_path / "state.npz", {"state": loop})


# --- crafted files are refused without running anything --------------------------------------------


class Payload:
    """Unpickled, it creates ``marker``: the proof that loading ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tree(*nodes: Any) -> bytes:
    parts = {f"p{i}": node for i, node in enumerate(nodes)}
    return json.dumps({"format": "scalesweep-state", "version": 1, "parts": parts}).encode()


def _object_npy(marker: Path) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def test_the_payload_runs_code_when_unpickled(tmp_path: Path) -> None:
    """The payload the next test uses has teeth: unpickling it, as pickle.load would, creates its marker."""
    marker = tmp_path / "ran"
    np.load(io.BytesIO(_object_npy(marker)), allow_pickle=True)
    assert marker.exists()
    marker.unlink()
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize(
    "craft",
    [
        "object-array",
        "object-array-as-tree",
        "raw-pickle-file",
        "raw-pickle-member",
        "pickle-tag",
        "tensor-dtype-not-a-dtype",
        "wrong-format",
    ],
)
def test_a_crafted_file_is_refused_without_running_anything(tmp_path: Path, craft: str) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "state.npz"
    payload = pickle.dumps({"w": Payload(marker)})
    if craft == "object-array":
        _npz(
            path, {"state.json": _tree({"$": "ndarray", "array": 0}), "0.npy": _object_npy(marker)}
        )
    elif craft == "object-array-as-tree":
        _npz(path, {"state.json": _object_npy(marker)})
    elif craft == "raw-pickle-file":
        path.write_bytes(payload)
    elif craft == "raw-pickle-member":
        _npz(path, {"state.json": _tree({"$": "ndarray", "array": 0}), "0.npy": payload})
    elif craft == "pickle-tag":
        _npz(path, {"state.json": _tree({"$": "pickle", "data": payload.hex()})})
    elif craft == "tensor-dtype-not-a-dtype":
        npy = io.BytesIO()
        np.save(npy, np.zeros(2, np.int64))
        _npz(
            path,
            {
                "state.json": _tree({"$": "tensor", "array": 0, "dtype": "load"}),
                "0.npy": npy.getvalue(),
            },
        )
    else:
        _npz(path, {"state.json": json.dumps({"format": "pickle", "parts": {}}).encode()})
    with pytest.raises(StateFileError, match=r"not a scalesweep state file .* never code"):
        read_state(path)
    assert not marker.exists()


# --- the built-in trainables' states --------------------------------------------------------------


class Checkpointing(Reporter):
    """Keeps every report and the state at ``save_at`` as read back from a state file; restores ``restore``."""

    def __init__(self, path: Path, save_at: int | None = None, restore: Any = None) -> None:
        super().__init__()
        self.reports: list[Report] = []
        self.path, self.save_at, self.restore, self.saved = path, save_at, restore, None

    def __call__(self, report: Report, state: Any = None) -> None:  # type: ignore[override]
        self.reports.append(report)
        if report.epoch == self.save_at:
            write_state(self.path, {"state": state()})
            self.saved = read_state(self.path)["state"]

    def restored_state(self) -> Any:
        return self.restore


TEMPLATE = dict(
    task="same_different",
    model="transformer",
    embed_dim=16,
    heads=1,
    dim_head=8,
    n_train=24,
    batch_size=10,
    n_test=48,
    test_alphabet=64,
    seeds=2,
    epochs=6,
    eval_every=2,
)
INCONTEXT = dict(
    d=8, k=12, embed_dim=16, depth=2, heads=2, batch_size=8, n_eval=16, lr=1e-3, seeds=2, steps=6
)


@pytest.mark.parametrize(
    "name,run",
    [
        ("template", lambda report: template_train(TEMPLATE, report)),
        ("incontext", lambda report: incontext_train({**INCONTEXT, "eval_every": 2}, report)),
        ("synthetic", lambda report: run_trainable(SYNTHETIC, {"epochs": 6, "seed": 0}, 2, report)),
        (
            "replicas",  # a plain function's seeds as replicas: the runner's state wraps theirs
            lambda report: run_trainable(
                Trainable(train=_numpy_trainable), {"epochs": 6}, 3, report
            ),
        ),
    ],
)
def test_a_built_in_trainable_resumed_from_a_state_file_continues_identically(
    tmp_path: Path, name: str, run: Any
) -> None:
    full = Checkpointing(tmp_path / "state.npz", save_at=2)
    run(full)
    assert full.saved is not None
    resumed = Checkpointing(tmp_path / "unused.npz", restore=full.saved)
    run(resumed)
    later = [r for r in full.reports if r.epoch > 2]
    assert later and resumed.reports == later


def _numpy_trainable(config: dict[str, Any], report: Reporter) -> None:
    """A trainable whose state is NumPy and Python RNG streams, a weight array and an int-keyed dict."""
    state = report.restored_state()
    rng, py = np.random.default_rng(config["seed"]), random.Random(config["seed"])
    w, epoch, seen = np.zeros(3, np.float32), 0, {}
    if state is not None:
        rng.bit_generator.state, w, epoch, seen = (
            state["rng"],
            state["w"],
            state["epoch"],
            state["seen"],
        )
        py.setstate(state["py"])
    while epoch < config["epochs"]:
        epoch += 1
        w = w + rng.standard_normal(3).astype(np.float32)
        seen[epoch] = py.random()
        report(
            {"epoch": epoch, "loss": float(np.square(w).sum()) + seen[epoch]},
            state=lambda e=epoch, w=w: {
                "epoch": e,
                "w": w,
                "rng": rng.bit_generator.state,
                "py": py.getstate(),
                "seen": dict(seen),
            },
        )


# --- a Tune trial resumed after a failure ---------------------------------------------------------

RESUMING = '''
import os, random
import numpy as np
import torch


def train(config, report):
    """Checkpoints tensors, NumPy and Python RNG states each epoch; the 'fail' trial dies once at epoch 3."""
    state = report.restored_state()
    if state is None:
        state = {"epoch": 0, "w": torch.zeros(4, dtype=torch.bfloat16),
                 "rng": np.random.default_rng(config["seed"]).bit_generator.state,
                 "py": random.Random(config["seed"]).getstate(), "opt": {0: {"step": torch.tensor(0.0)}}}
    elif config["fail"]:
        assert state["w"].dtype == torch.bfloat16 and isinstance(state["opt"][0]["step"], torch.Tensor)
    rng, py = np.random.default_rng(), random.Random()
    rng.bit_generator.state = state["rng"]
    py.setstate(state["py"])
    w, step = state["w"], state["opt"][0]["step"]
    for epoch in range(state["epoch"] + 1, config["epochs"] + 1):
        if config["fail"] and epoch == 3 and not os.path.exists(config["marker"]):
            open(config["marker"], "w").close()
            raise RuntimeError("dies once")
        w, step = w + torch.tensor(rng.standard_normal(4), dtype=torch.bfloat16), step + 1
        loss = float(w.float().square().sum()) + py.random() + float(step)
        report({"epoch": epoch, "loss": loss}, state=lambda e=epoch, w=w, s=step: {
            "epoch": e, "w": w, "rng": rng.bit_generator.state, "py": py.getstate(),
            "opt": {0: {"step": s}}})


class Model:
    pass


def bad(config, report):
    report({"epoch": 1, "loss": 1.0}, state=lambda: {"opt": [1, 2, Model()]})
'''


def _sweep(tmp_path: Path, trainable: str, axes: dict[str, Any]) -> pd.DataFrame:
    (tmp_path / "resuming.py").write_text(RESUMING)
    spec = {
        "name": trainable.split(":")[1],
        "trainable": trainable,
        "fixed": {"epochs": 5, "marker": str(tmp_path / "died")},
        "axes": axes,
        "search": {"samples_per_cell": 1},
        "metric": {"name": "loss", "mode": "min"},
        "scheduler": {},
        "max_failures": 1,
        "checkpoint_every_s": 0,
        "storage": {"results": "results", "tracking_uri": None},
    }
    proc = scalesweep("run", str(write_spec(tmp_path / "spec.yaml", spec)), cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return pd.read_parquet(tmp_path / "results" / spec["name"] / "trials.parquet")


def test_a_tune_trial_that_dies_resumes_from_its_state_file_identically(tmp_path: Path) -> None:
    trials = _sweep(tmp_path, "resuming:train", {"fail": [False, True]}).set_index("cell")
    assert (tmp_path / "died").exists()  # the trial did die, and was restored
    assert list(trials.status) == ["completed", "completed"]
    metrics = pd.read_parquet(tmp_path / "results" / "train" / "metrics")
    by_trial = {
        cell: metrics[metrics.trial_id == trials.loc[cell].trial_id]
        .sort_values("epoch")
        .loss.tolist()
        for cell in ("fail=false", "fail=true")
    }
    assert len(by_trial["fail=true"]) == 5 and by_trial["fail=true"] == by_trial["fail=false"]


def test_a_tune_trial_with_an_unsupported_state_errors_at_its_first_checkpoint(
    tmp_path: Path,
) -> None:
    (trial,) = _sweep(tmp_path, "resuming:bad", {"fail": [False]}).itertuples()
    assert trial.status == "errored"
    assert "checkpoint state['replicas'][0]['opt'][2]: cannot store a Model" in trial.error
