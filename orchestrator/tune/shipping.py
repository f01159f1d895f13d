"""Getting a researcher's trainable onto every Ray worker, wherever the module lives.

An installed trainable (a built-in, an entry point, anything on site-packages) is looked up again on the
worker by name. A module found beside the spec or in the working directory is not on a cluster's other
machines: its top-level package (or single file) travels with the trial as bytes and is unpacked into a
cache directory on the worker's ``sys.path``, which works on a local Ray, on an existing cluster reached
with ``--address`` and on Kubernetes alike, whether or not Ray was started by scalesweep. A function
defined in ``__main__`` (a notebook, a script) and a command travel by value (cloudpickle).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.spec.schema import SpecError
from trainables import Trainable, get_trainable
from trainables.command import Command

MAX_BYTES = 50 * 2**20
_SKIP = {"__pycache__", ".git", ".venv", "results", "mlruns", ".ipynb_checkpoints"}
_INSTALLED = ("site-packages", "dist-packages")
_OWN = Path(__file__).resolve().parents[2]  # this project's own packages are installed on workers


@dataclass(frozen=True)
class Shipped:
    """What a trial's worker needs to find the trainable: its name or ``module:attr`` (looked up again
    there, with ``code`` unpacked first when given), or the trainable itself."""

    ref: str | None = None
    trainable: Trainable | None = None
    code: bytes | None = None

    def load(self) -> Trainable:
        if self.trainable is not None:
            return self.trainable
        assert self.ref is not None
        if self.code is not None:
            _unpack(self.code)
        return get_trainable(self.ref)


def ship(trainable: Trainable, ref: str | None) -> Shipped:
    """How ``trainable`` (found as ``ref``; None when given as an object) reaches the workers."""
    if ref is None or isinstance(trainable.train, Command):
        return Shipped(trainable=trainable)
    if ":" not in ref:  # an installed name
        return Shipped(ref=ref)
    top = ref.partition(":")[0].split(".")[0]
    module = sys.modules.get(top)
    origin = _origin(module) if module is not None else None
    if origin is None or _installed(origin):
        return Shipped(ref=ref)
    return Shipped(ref=ref, code=_pack(origin))


def _origin(module: object) -> Path | None:
    """The directory of a package, or the file of a single-file module (None: built in or namespace)."""
    paths = list(getattr(module, "__path__", []) or [])
    if paths:
        return Path(paths[0]).resolve()
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def _installed(origin: Path) -> bool:
    return any(part in _INSTALLED for part in origin.parts) or origin.is_relative_to(_OWN)


def _pack(origin: Path) -> bytes:
    """The package directory (or the file) as a zip, paths relative to the directory holding it."""
    files = (
        [origin]
        if origin.is_file()
        else sorted(
            p
            for p in origin.rglob("*")
            if p.is_file()
            and not (_SKIP & set(p.relative_to(origin).parts[:-1]))
            and p.suffix not in (".pyc", ".pyo")
        )
    )
    size = sum(p.stat().st_size for p in files)
    if size > MAX_BYTES:
        raise SpecError(
            f"trainable: {origin} holds {size / 2**20:.0f} MiB of files to send to every worker "
            f"(at most {MAX_BYTES // 2**20} MiB); install it as a package on the workers instead"
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(origin.parent))
    return buffer.getvalue()


def _unpack(code: bytes) -> None:
    """Unpack once per worker and content (a cache keyed by its hash), then put it first on sys.path."""
    target = Path(tempfile.gettempdir()) / "scalesweep-code" / hashlib.sha256(code).hexdigest()[:16]
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
        zipfile.ZipFile(io.BytesIO(code)).extractall(staging)
        try:
            staging.rename(target)
        except OSError:  # another worker on this machine got there first
            shutil.rmtree(staging, ignore_errors=True)
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
