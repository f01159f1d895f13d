"""Running a trainable for one trial: its seeds, its reports joined, its checkpoints split.

A trainable that stacks seeds itself gets ``seeds`` in its config and reports every row. Any other runs
once per seed, ``seed`` = base seed + s, in threads that advance in lockstep: each replica's k-th report
waits until every live replica has made its k-th, and the last to arrive sends them as one
:class:`Report` (one row per seed). Lockstep is what lets early stopping decide on the seed mean at each
rung, and it makes a checkpoint consistent: when the runner checkpoints, every replica is paused at the
same report, so their states are saved together and restored together.

Threads, not processes: a replica that computes in NumPy or torch releases the GIL and runs beside the
others; a pure-Python one runs interleaved, costing what running the seeds one after another would.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .api import MEMBERS, Report, Reporter, StateFn, Trainable, single_row

SEEDS = "seeds"


def run_trainable(
    trainable: Trainable, config: Mapping[str, Any], seeds: int, report: Reporter
) -> None:
    """Train one trial's ``config`` (spec values, with ``seed`` as the base seed) for ``seeds`` seeds."""
    if trainable.stacks_seeds:
        trainable.function()(trainable.resolved({**config, SEEDS: seeds}), report)
        return
    base = trainable.resolved({k: v for k, v in config.items() if k != MEMBERS})
    seed = int(base.get("seed", 0))
    configs = [{**base, "seed": seed + s} for s in range(seeds)]
    _Lockstep(report, [c["seed"] for c in configs]).run(trainable, configs)


class _Abort(BaseException):
    """Unwinds a replica thread when the trial ends for another reason (another replica failed, or the
    runner stopped the trial)."""


class _Lockstep:
    """Joins the reports of a trial's replicas, one report of each into one :class:`Report`."""

    def __init__(self, outer: Reporter, seeds: list[int]) -> None:
        self._outer = outer
        self.seeds = seeds
        self._cond = threading.Condition()
        self._live = set(range(len(seeds)))
        self._pending: dict[int, tuple[Report, StateFn | None]] = {}
        self._round = 0
        self._failure: BaseException | None = None
        restored = outer.restored_state()
        self.restored: list[Any] = (
            restored["replicas"] if restored is not None else [None] * len(seeds)
        )

    def run(self, trainable: Trainable, configs: list[dict[str, Any]]) -> None:
        """Run every replica (one seed: in the calling thread, as the runner called it) and raise the
        first failure, or the runner's stop, in the calling thread."""
        fn = trainable.function()
        if len(configs) == 1:
            self._replica(fn, configs[0], 0)
        else:
            threads = [
                threading.Thread(
                    target=self._replica,
                    args=(fn, config, i),
                    daemon=True,
                    name=f"seed-{config['seed']}",
                )
                for i, config in enumerate(configs)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if self._failure is not None:
            raise self._failure

    def _replica(self, fn: Any, config: dict[str, Any], index: int) -> None:
        try:
            fn(config, _Replica(self, index))
        except _Abort:
            pass
        except BaseException as err:  # noqa: BLE001  (handed to the trial's thread, which raises it)
            with self._cond:
                if self._failure is None:
                    self._failure = err
                self._cond.notify_all()
            return
        self.done(index)

    def done(self, index: int) -> None:
        """A replica returned: the others no longer wait for it."""
        with self._cond:
            self._live.discard(index)
            if self._live and set(self._pending) >= self._live:
                self._send()

    def report(self, index: int, report: Report, state: StateFn | None) -> None:
        with self._cond:
            self._pending[index] = (report, state)
            this_round = self._round
            if set(self._pending) >= self._live:
                self._send()
            while self._round == this_round and self._failure is None:
                self._cond.wait()
            if self._failure is not None:
                raise _Abort()

    def _send(self) -> None:
        """Send the joined report of this round (called with the lock held, every other live replica waiting
        inside ``report``, so their states are those of their reports)."""
        pending, self._pending = dict(sorted(self._pending.items())), {}
        epochs = {r.epoch for r, _ in pending.values()}
        try:
            if len(epochs) > 1:
                raise ValueError(
                    f"seeds reported different epochs at one report ({sorted(epochs)}): each seed "
                    f"must report the same sequence of epochs"
                )
            rows = [row for r, _ in pending.values() for row in r.rows]
            states = [s for _, s in pending.values()]
            state = (
                (lambda: {"replicas": [s() if s is not None else None for s in states]})
                if len(pending) == len(self.seeds) and all(s is not None for s in states)
                else None
            )
            self._outer(Report(epochs.pop(), rows), state)
        except BaseException as err:  # the runner stopped the trial (SystemExit) or sending failed
            self._failure = self._failure or err
        self._round += 1
        self._cond.notify_all()


class _Replica(Reporter):
    """The reporter one replica sees: its plain reports become rows with its own seed."""

    def __init__(self, lockstep: _Lockstep, index: int) -> None:
        super().__init__()
        self._lockstep, self._index = lockstep, index
        self._seed = lockstep.seeds[index]

    def __call__(self, metrics: Mapping[str, Any] | Report, state: StateFn | None = None) -> None:
        if isinstance(metrics, Report):
            rows = [replace(r, member=0, seed=self._seed) for r in metrics.rows]
            report = Report(metrics.epoch, rows)
        else:
            report = single_row(metrics, self._seed)
        self._lockstep.report(self._index, report, state)

    def restored_state(self) -> Any:
        return self._lockstep.restored[self._index]
