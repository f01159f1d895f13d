"""A trial's checkpoint as data: a JSON tree and the arrays it points to, in one ``.npz`` file.

Not pickle (nor ``torch.save``, which is pickle): loading a pickle runs whatever code it names, so anyone
who can write a results directory could run code in the sweep's cluster when a trial resumes. Reading this
file runs none: the tree is JSON, each array is a ``.npy`` member read by ``np.load(allow_pickle=False)``,
which refuses object arrays, and the tree's tags name only the few types below.

One file, so that one rename makes a write atomic; plain tools read it (``unzip -p state.npz state.json``
shows the tree, ``np.load`` the arrays). In the tree, JSON strings, finite numbers, booleans, null and
lists stand for themselves; every JSON object is a tag ``{"$": kind, ...}``:

- ``dict`` (``items``: an object; all keys are strings), ``pairs`` (``items``: ``[[key, value], ...]``, for
  any other keys, e.g. a torch optimizer's int keys), ``tuple`` (``items``), in their order;
- ``float`` (``value``: ``"nan"``, ``"inf"`` or ``"-inf"``: JSON has none);
- ``bytes``, ``ndarray``, ``scalar`` (a NumPy scalar, as a 0-d array) and ``tensor`` (``dtype``: torch's
  name): ``array`` is the index of the member ``<array>.npy``. A tensor whose dtype NumPy lacks
  (bfloat16, float8, complex32) is stored as the integers of its bits.

Python ints of any size stay JSON numbers. Tensors come back on the CPU (the trainable moves them), as
plain tensors; dict subclasses (OrderedDict) come back as dicts. torch is imported only to read a file
that holds tensors, and to write one only by a process that already imported it.
"""

from __future__ import annotations

import json
import math
import os
import sys
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

FORMAT, VERSION = "scalesweep-state", 1
TREE = "state.json"
ZIP = b"PK\x03\x04"
EXPECTED = "expected dicts, lists, numbers, strings, arrays or tensors"
# torch dtypes NumPy holds as they are; a tensor of any other is stored as the integers of its bits
NUMPY_TORCH = {
    "bool",
    "uint8",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
}
BITS = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}


class StateFileError(ValueError):
    """A file that is not a state file this module wrote: refused, nothing in it run."""


def write_state(path: str | os.PathLike[str], parts: Mapping[str, Any]) -> None:
    """Write ``parts`` ({name: value}) to ``path`` atomically (a temporary file, then a rename).

    A value that cannot be stored fails here, naming where it is: ``checkpoint state['opt'][2]: cannot
    store a Foo; ...``, so a trainable learns at its first checkpoint, not at a resume."""
    writer = _Writer()
    tree: dict[str, Any] = {"format": FORMAT, "version": VERSION, "parts": {}}
    for name, value in parts.items():
        tree["parts"][name] = writer.encode(value, (None, name))
    tmp = f"{os.fspath(path)}.tmp"
    try:
        with open(tmp, "wb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                zf.writestr(TREE, json.dumps(tree, allow_nan=False, separators=(",", ":")))
                for i, array in enumerate(writer.arrays):
                    with zf.open(f"{i}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parts :func:`write_state` wrote to ``path``; anything else is refused with a
    :class:`StateFileError`, and no code in the file runs."""
    try:
        with open(path, "rb") as f:
            # a pickle, a lone .npy: refused here, since numpy's own message suggests loading it unsafely
            if f.read(4) != ZIP:
                raise StateFileError("not an .npz archive")
        with np.load(path, allow_pickle=False) as npz:
            tree = json.loads(npz[TREE]) if TREE in npz else None
            if not (
                isinstance(tree, dict)
                and tree.get("format") == FORMAT
                and tree.get("version") == VERSION
                and isinstance(tree.get("parts"), dict)
            ):
                raise StateFileError(f"no {TREE} of format {FORMAT} v{VERSION}")
            reader = _Reader(npz)
            return {name: reader.decode(node) for name, node in tree["parts"].items()}
    except (ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as err:
        raise StateFileError(
            f"checkpoint {os.fspath(path)}: not a scalesweep state file ({err}); refused without "
            f"running anything in it: a checkpoint holds data, never code"
        ) from None


# Where a value sits: (the parent's Where, its key), or (None, the part's name); formatted only on error
Where = tuple[Any, Any]


def _where(where: Where) -> str:
    keys = []
    while where[0] is not None:
        where, key = where
        keys.append(f"[{key!r}]")
    return f"checkpoint {where[1]}{''.join(reversed(keys))}"


class _Writer:
    """Encodes a value as a JSON tree, collecting its arrays."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self._torch = sys.modules.get("torch")  # a tensor exists only where torch was imported
        # the containers being encoded: a value inside itself is refused
        self._open: set[int] = set()

    def encode(self, value: Any, where: Where) -> Any:
        kind = type(value)
        if value is None or kind in (str, bool, int):
            return value
        if kind is float:
            return value if math.isfinite(value) else {"$": "float", "value": repr(value)}
        if isinstance(value, np.generic) and not value.dtype.hasobject:
            return {"$": "scalar", "array": self._array(np.asarray(value))}
        if kind is np.ndarray:
            if value.dtype.hasobject:
                raise TypeError(
                    f"{_where(where)}: cannot store an array of Python objects; {EXPECTED}"
                )
            return {"$": "ndarray", "array": self._array(value)}
        if self._torch is not None and isinstance(value, self._torch.Tensor):
            return self._tensor(value, where)
        if kind is bytes:
            return {"$": "bytes", "array": self._array(np.frombuffer(value, dtype=np.uint8))}
        if isinstance(value, dict) or kind in (list, tuple):
            if id(value) in self._open:
                raise TypeError(
                    f"{_where(where)}: cannot store a {kind.__name__} that contains itself"
                )
            self._open.add(id(value))
            node = self._container(value, where)
            self._open.discard(id(value))
            return node
        raise TypeError(f"{_where(where)}: cannot store a {kind.__name__}; {EXPECTED}")

    def _container(self, value: dict | list | tuple, where: Where) -> Any:
        if isinstance(value, list):
            return [self.encode(v, (where, i)) for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {
                "$": "tuple",
                "items": [self.encode(v, (where, i)) for i, v in enumerate(value)],
            }
        if all(type(k) is str for k in value):
            return {"$": "dict", "items": {k: self.encode(v, (where, k)) for k, v in value.items()}}
        pairs = [[self.encode(k, (where, k)), self.encode(v, (where, k))] for k, v in value.items()]
        return {"$": "pairs", "items": pairs}

    def _tensor(self, tensor: Any, where: Where) -> dict[str, Any]:
        torch = self._torch
        if tensor.layout is not torch.strided or tensor.is_quantized:
            layout = (
                "quantized" if tensor.is_quantized else str(tensor.layout).removeprefix("torch.")
            )
            raise TypeError(
                f"{_where(where)}: cannot store a {layout} tensor; store it dense (to_dense(), dequantize())"
            )
        dtype = str(tensor.dtype).removeprefix("torch.")
        if not _tensor_dtype(tensor.dtype):
            raise TypeError(f"{_where(where)}: cannot store a tensor of dtype {dtype}; {EXPECTED}")
        t = tensor.detach().cpu().resolve_conj().resolve_neg().contiguous()
        if dtype not in NUMPY_TORCH:
            t = t.view(getattr(torch, BITS[t.element_size()]))
        return {"$": "tensor", "array": self._array(t.numpy()), "dtype": dtype}

    def _array(self, array: np.ndarray) -> int:
        self.arrays.append(array)
        return len(self.arrays) - 1


class _Reader:
    """Decodes a JSON tree, taking its arrays from the file; any node it does not expect is refused."""

    def __init__(self, npz: Any) -> None:
        self._npz = npz

    def decode(self, node: Any) -> Any:
        kind = type(node)
        if node is None or kind in (str, bool, int, float):
            return node
        if kind is list:
            return [self.decode(v) for v in node]
        if kind is not dict:
            raise StateFileError(f"unexpected node {node!r:.80}")
        tag = node.get("$")
        if tag in ("dict", "pairs", "tuple") and set(node) == {"$", "items"}:
            items = node["items"]
            if tag == "dict" and type(items) is dict:
                return {k: self.decode(v) for k, v in items.items()}
            if tag == "pairs" and type(items) is list and all(_is_pair(p) for p in items):
                return {self.decode(k): self.decode(v) for k, v in items}
            if tag == "tuple" and type(items) is list:
                return tuple(self.decode(v) for v in items)
        if (
            tag == "float"
            and set(node) == {"$", "value"}
            and node["value"] in ("nan", "inf", "-inf")
        ):
            return float(node["value"])
        if tag in ("bytes", "ndarray", "scalar") and set(node) == {"$", "array"}:
            array = self._array(node["array"])
            if tag == "ndarray":
                return array
            if tag == "scalar" and array.ndim == 0:
                return array[()]
            if tag == "bytes" and array.dtype == np.uint8 and array.ndim == 1:
                return array.tobytes()
        if tag == "tensor" and set(node) == {"$", "array", "dtype"}:
            return self._tensor(self._array(node["array"]), node["dtype"])
        raise StateFileError(f"unexpected node {json.dumps(node)[:80]}")

    def _array(self, index: Any) -> np.ndarray:
        array = self._npz[f"{index}.npy"] if type(index) is int else None
        if not isinstance(array, np.ndarray):
            raise StateFileError(f"array {index!r:.20} is not a .npy array")
        return array

    def _tensor(self, array: np.ndarray, dtype: Any) -> Any:
        import torch  # only a file that holds tensors needs it

        wanted = getattr(torch, dtype, None) if isinstance(dtype, str) else None
        if not (isinstance(wanted, torch.dtype) and _tensor_dtype(wanted)) or array.dtype != (
            np.dtype(dtype if dtype in NUMPY_TORCH else BITS[wanted.itemsize])
        ):
            raise StateFileError(f"a tensor of dtype {dtype!r:.40} stored as {array.dtype}")
        return torch.from_numpy(array).view(wanted)


def _tensor_dtype(dtype: Any) -> bool:
    """A torch dtype this file holds: NumPy's, or a float or complex one stored as its bits."""
    name = str(dtype).removeprefix("torch.")
    return name in NUMPY_TORCH or (
        (dtype.is_floating_point or dtype.is_complex) and dtype.itemsize in BITS
    )


def _is_pair(item: Any) -> bool:
    return type(item) is list and len(item) == 2
