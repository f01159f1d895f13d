"""Where Tune keeps a sweep's experiment state and trial checkpoints.

By default that is ``<results>/<sweep>/tune`` on the driver's disk: enough on one machine, and on
Kubernetes where every pod mounts the same volume. When Ray workers run on machines that do not
share the driver's disk, Ray requires storage that every node reaches; the spec's
``storage.checkpoints`` names it: a path on a shared filesystem, or a URI that pyarrow.fs
understands (``s3://bucket/prefix``, ``gs://...``; options in the query string, e.g.
``?endpoint_override=minio:9000&scheme=http``). The experiment then lives at
``<checkpoints>/<sweep>/tune``. Parquet results, the Optuna studies and the driver lock stay on the
driver's disk: only the driver writes them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.fs as pafs

from orchestrator.spec.schema import SpecError, SweepSpec

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

EXPERIMENT = "tune"


@dataclass(frozen=True)
class ExperimentStore:
    """Tune's experiment directory ``<base>/<EXPERIMENT>`` on a pyarrow filesystem."""

    fs: pafs.FileSystem
    base: str  # Tune's storage_path: the parent of the experiment directory, as a path on ``fs``

    @classmethod
    def for_sweep(cls, spec: SweepSpec, root: Path) -> "ExperimentStore":
        where = spec.storage.checkpoints
        if where is None:
            return cls(pafs.LocalFileSystem(), str(root.resolve()))
        if "://" not in where:  # a plain path, e.g. an NFS mount every node has
            return cls(pafs.LocalFileSystem(), str(Path(where).resolve() / spec.name))
        try:
            fs, path = pafs.FileSystem.from_uri(where)
        except (ValueError, OSError) as err:
            raise SpecError(
                f"storage.checkpoints: cannot open {where!r} ({str(err).splitlines()[0]}); "
                f"expected a path or a URI such as s3://bucket/prefix"
            ) from None
        return cls(fs, f"{path.rstrip('/')}/{spec.name}")

    @property
    def path(self) -> str:
        return f"{self.base}/{EXPERIMENT}"

    def has_state(self) -> bool:
        """Whether Tune saved an experiment snapshot here (``tuner.pkl`` alone is written at
        construction, before any state: restoring from it would run almost nothing)."""
        names = {Path(info.path).name for info in self._listing(self.path)}
        return "tuner.pkl" in names and any(n.startswith("experiment_state-") for n in names)

    def clear(self) -> None:
        if self.fs.get_file_info(self.path).type != pafs.FileType.NotFound:
            self.fs.delete_dir(self.path)

    def drop_checkpoints(self, done: Callable[[str], bool]) -> None:
        """When ``fit`` returns: remove the checkpoints of trials ``done`` says no restore will need.
        A driver killed between recording a trial and deleting them leaves them, and so does one
        killed after a trial checkpointed but before Tune's next snapshot (the trial is lost and its
        slot rerun under a new id)."""
        for info in self._listing(self.path):
            if info.type == pafs.FileType.Directory and done(Path(info.path).name):
                _delete_checkpoints(self.fs, info.path)

    def _listing(self, directory: str) -> list[pafs.FileInfo]:
        try:
            return self.fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
        except OSError as err:
            raise SpecError(
                f"storage.checkpoints: cannot list {directory!r} ({str(err).splitlines()[0]})"
            ) from None


def relocate(trial: "Trial", store: ExperimentStore) -> None:
    """Point a trial at this driver's experiment directory. Tune restores the trials of its snapshot
    there, but trials its search state creates later keep the directory the sweep started in, which a
    copied or moved results directory no longer has."""
    if trial.storage.storage_fs_path != store.base:
        moved = copy.copy(trial.storage)
        moved.storage_fs_path, moved.storage_filesystem = store.base, store.fs
        trial.set_storage(moved)


def delete_checkpoints(trial: "Trial") -> None:
    """Remove a recorded trial's checkpoints wherever Tune put them: no restore will need them."""
    _delete_checkpoints(trial.storage.storage_filesystem, trial.storage.trial_fs_path)


def _delete_checkpoints(fs: pafs.FileSystem, directory: str) -> None:
    for info in fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True)):
        if info.type == pafs.FileType.Directory and Path(info.path).name.startswith("checkpoint_"):
            fs.delete_dir(info.path)
