"""The adaptive data axis's search, against a scan of the full grid: same n*, few probes, few rounds.

Outcomes come from plain functions of the grid index, so every threshold (and every non-monotone
pattern on small grids) is checked exhaustively in well under a second; no Ray, no files.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable

import pytest

from orchestrator.spec.adaptive import GroupSearch, adaptive_grid, max_probes, meets

GRID = adaptive_grid(4, 65536)  # 15 values
Outcome = Callable[[int], bool]


def monotone(grid: list[int], t: int) -> Outcome:
    """Succeeds from grid index t on (t = 0: all succeed; t = len(grid): none)."""
    return lambda v: grid.index(v) >= t


def full_scan(grid: list[int], ok: Outcome) -> int | None:
    """n* as `answers.curves` reads it off a full grid: smallest value good at every value above."""
    return next((v for v in grid if all(ok(w) for w in grid if w >= v)), None)


def drive(search: GroupSearch, ok: Outcome, k: int) -> int:
    """Run the search to the end, k probes a round, each round waiting for all; returns rounds."""
    rounds = 0
    while not search.resolved:
        probes = search.next_probes(k)
        assert probes, f"stuck: {search!r}"
        assert not set(probes) & set(search.outcomes), "asked for a value already recorded"
        for value in probes:
            search.record(value, ok(value))
        rounds += 1
    return rounds


# --------------------------------------------------------------------------------- the grid


def test_ratio_2_from_4_to_65536_is_the_powers_of_two() -> None:
    assert GRID == [2**i for i in range(2, 17)]


def test_ratio_1_41_gives_increasing_integers_up_to_high() -> None:
    grid = adaptive_grid(4, 65536, 1.41)
    assert all(isinstance(v, int) for v in grid)
    assert grid[0] == 4 and grid[-1] <= 65536 < round(grid[-1] * 1.41) + 1
    assert all(b > a for a, b in zip(grid, grid[1:]))
    small = adaptive_grid(1, 20, 1.41)  # 1.41 and 1.99 round to 1 and 2: duplicates dropped
    assert small == [1, 2, 3, 4, 6, 8, 11, 16]


def test_grid_edges() -> None:
    assert adaptive_grid(7, 7) == [7]
    assert adaptive_grid(4, 100) == [4, 8, 16, 32, 64]  # high is included only when on the grid
    assert adaptive_grid(3, 5, 1.5) == [3, 5]  # 4.5 rounds half up


@pytest.mark.parametrize(
    ("low", "high", "ratio", "message"),
    [
        (0, 16, 2.0, "low must be an integer >= 1, got 0"),
        (16, 8, 2.0, r"high must be >= low \(16\), got 8"),
        (4, 16, 1.0, "ratio must be a finite number > 1, got 1.0"),
        (4, 16, float("nan"), "ratio must be a finite number > 1"),
        (4, 16, float("inf"), "ratio must be a finite number > 1"),
        (1, 2**40, 1 + 1e-9, "too close to 1"),
    ],
)
def test_bad_grid_arguments_say_what_is_wrong(
    low: int, high: int, ratio: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        adaptive_grid(low, high, ratio)


def test_max_probes_is_at_most_the_binary_search_bound() -> None:
    assert max_probes(15) == 6 and max_probes(1) == 1 and max_probes(2) == 2
    assert max_probes(17) == 6  # 2 + ceil(log2 16): one less than 2 + ceil(log2 17)
    for n in range(1, 300):
        assert max_probes(n) <= (1 if n == 1 else 2 + math.ceil(math.log2(n)))
    with pytest.raises(ValueError, match="n_values must be >= 1"):
        max_probes(0)


# ------------------------------------------------------------------------- monotone curves


@pytest.mark.parametrize("t", range(len(GRID) + 1))
def test_bisection_finds_the_full_grid_n_star_within_max_probes(t: int) -> None:
    ok = monotone(GRID, t)
    search = GroupSearch(GRID)
    rounds = drive(search, ok, k=1)
    assert search.n_star == full_scan(GRID, ok)
    assert search.probes == rounds <= max_probes(len(GRID)) == 6
    assert search.non_monotone == []
    assert search.censored == ("below" if t == 0 else "above" if t == len(GRID) else None)


def test_random_monotone_curves_on_random_grids() -> None:
    rng = random.Random(0)
    for _ in range(300):
        grid = adaptive_grid(rng.randint(1, 50), rng.randint(50, 10**6), rng.uniform(1.05, 3.0))
        ok = monotone(grid, rng.randint(0, len(grid)))
        search = GroupSearch(grid)
        drive(search, ok, k=1)
        assert search.n_star == full_scan(grid, ok)
        assert search.probes <= max_probes(len(grid))


def test_k_ary_search_takes_fewer_rounds_for_the_same_n_star() -> None:
    rounds = {k: [] for k in (1, 2, 3)}
    for t, k in itertools.product(range(len(GRID) + 1), rounds):
        ok = monotone(GRID, t)
        search = GroupSearch(GRID)
        rounds[k].append(drive(search, ok, k))
        assert search.n_star == full_scan(GRID, ok)
    assert max(rounds[1]) == 6 and max(rounds[2]) == 4 and max(rounds[3]) == 3
    assert sum(rounds[3]) < sum(rounds[2]) < sum(rounds[1])
    assert all(r3 <= r1 for r1, r3 in zip(rounds[1], rounds[3]))


def test_k_slots_split_the_bracket_evenly_on_grid_indices() -> None:
    search = GroupSearch(GRID)
    assert search.next_probes(1) == [GRID[0]]  # the cheap end first
    assert search.next_probes(2) == [GRID[0], GRID[14]]
    assert search.next_probes(3) == [GRID[0], GRID[7], GRID[14]]
    search.record(GRID[0], False)
    search.record(GRID[14], True)
    assert search.bracket == (GRID[0], GRID[14])
    assert search.next_probes(1) == [GRID[7]]
    assert search.next_probes(3) == [GRID[4], GRID[7], GRID[11]]
    assert search.next_probes(20) == GRID[1:14]  # more slots than values: probe them all


def test_pending_probes_are_not_repeated_and_split_the_bracket() -> None:
    search = GroupSearch(GRID, {GRID[0]: False, GRID[14]: True})
    search.start(GRID[7])
    assert search.pending == (GRID[7],)
    assert search.next_probes(2) == [GRID[4], GRID[11]]  # one on each side of the pending one
    assert search.next_probes(2, pending=[GRID[4], GRID[11]]) == [GRID[2], GRID[9]]
    everything = GRID[1:7] + GRID[8:14]
    assert search.next_probes(5, pending=everything) == []  # must wait
    search.record(GRID[7], True)
    assert search.pending == () and search.bracket == (GRID[0], GRID[7])
    with pytest.raises(ValueError, match="already recorded"):
        search.start(GRID[7])


# ----------------------------------------------------------------- non-monotone, errors, edges


def test_non_monotone_probes_are_flagged_and_n_star_follows_the_rule() -> None:
    # succeed at index 3, fail at 5, succeed from 7 on; a resume found 3 and 5 already recorded
    ok: Outcome = lambda v: GRID.index(v) == 3 or GRID.index(v) >= 7  # noqa: E731
    search = GroupSearch(GRID, {GRID[3]: True, GRID[5]: False})
    drive(search, ok, k=1)
    assert search.non_monotone == [GRID[3], GRID[5], GRID[6]]
    assert search.n_star == GRID[7] == full_scan(GRID, ok) and search.censored is None
    # found by the search itself: k=3 probes indices 2, 4, 5 in its second round
    ok = lambda v: GRID.index(v) in (3, 4) or GRID.index(v) >= 7  # noqa: E731
    search = GroupSearch(GRID)
    assert drive(search, ok, k=3) == 3
    assert search.non_monotone == [GRID[4], GRID[5], GRID[6]] and search.n_star == GRID[7]


def test_low_succeeding_and_high_failing_gives_no_n_star() -> None:
    search = GroupSearch(GRID)
    drive(search, lambda v: v == GRID[0], k=2)
    assert search.probes == 2 and search.n_star is None and search.censored == "above"
    assert search.non_monotone == [GRID[0], GRID[-1]]


def test_every_outcome_pattern_on_small_grids_follows_the_rule() -> None:
    for n, k in itertools.product(range(1, 9), (1, 2, 3)):
        grid = adaptive_grid(4, 4 * 2 ** (n - 1))
        for bits in itertools.product([False, True], repeat=n):
            search = GroupSearch(grid)
            drive(search, lambda v, b=bits, g=grid: b[g.index(v)], k)
            seen = search.outcomes
            assert search.n_star == full_scan(sorted(seen), lambda v, s=seen: s[v])
            assert k > 1 or search.probes <= max_probes(n)
            assert grid[0] in seen and grid[-1] in seen


def test_a_grid_of_one_or_two_values() -> None:
    for ok, n_star, censored in ((True, 16, "below"), (False, None, "above")):
        one = GroupSearch([16])
        assert drive(one, lambda v, ok=ok: ok, k=1) == 1
        assert (one.n_star, one.censored) == (n_star, censored)
    two = GroupSearch([4, 8])
    assert drive(two, lambda v: v >= 8, k=1) == 2
    assert (two.n_star, two.censored, two.bracket) == (8, None, (4, 8))


def test_an_errored_probe_leaves_the_grid_and_is_never_asked_again() -> None:
    for t, bad in itertools.product(range(len(GRID) + 1), range(len(GRID))):
        ok = monotone(GRID, t)
        search = GroupSearch(GRID)
        while not search.resolved:
            for value in search.next_probes(1):
                assert value not in search.outcomes
                search.record(value, None if value == GRID[bad] else ok(value))
        rest = [v for v in GRID if v != GRID[bad]]
        assert search.n_star == full_scan(rest, ok)  # as a full grid with that cell missing
        if search.n_star == rest[0]:
            assert search.censored == "below"
    everything = GroupSearch([4, 8], {4: None, 8: None})
    assert everything.resolved and everything.n_star is None and everything.censored is None
    assert everything.errored == [4, 8] and everything.next_probes(3) == []


# --------------------------------------------------------------------------------- resuming


def test_a_resume_from_any_subset_asks_nothing_twice_and_ends_the_same() -> None:
    rng = random.Random(1)
    for t, k in itertools.product(range(len(GRID) + 1), (1, 3)):
        ok = monotone(GRID, t)
        first = GroupSearch(GRID)
        drive(first, ok, k)
        for _ in range(10):
            done = list(first.outcomes) + rng.sample(GRID, rng.randint(0, 3))
            kept = rng.sample(done, rng.randint(0, len(done)))
            resumed = GroupSearch(GRID, {v: ok(v) for v in kept})
            drive(resumed, ok, k)  # asserts no recorded value is asked for
            assert resumed.n_star == first.n_star and resumed.censored == first.censored


def test_the_search_depends_on_the_outcomes_not_their_order() -> None:
    outcomes = {GRID[0]: False, GRID[9]: True, GRID[3]: False, GRID[14]: True}
    a = GroupSearch(GRID, outcomes)
    b = GroupSearch(GRID)
    for value in reversed(list(outcomes)):
        b.record(value, outcomes[value])
    assert a.next_probes(2) == b.next_probes(2) == [GRID[5], GRID[7]]
    assert a.outcomes == b.outcomes == dict(sorted(outcomes.items()))


def test_recording_checks_what_it_is_given() -> None:
    search = GroupSearch(GRID)
    with pytest.raises(ValueError, match="5 is not on this group's grid"):
        search.record(5, True)
    search.record(GRID[0], False)
    search.record(GRID[0], False)  # a replay is a no-op
    with pytest.raises(ValueError, match="was recorded as False, now True"):
        search.record(GRID[0], True)
    with pytest.raises(ValueError, match="strictly increasing"):
        GroupSearch([8, 4])
    with pytest.raises(ValueError, match="values is empty"):
        GroupSearch([])


def test_meeting_the_threshold_counts_ties_and_not_nan() -> None:
    assert meets(0.05, 0.05) and not meets(0.06, 0.05) and not meets(float("nan"), 0.05)
    assert meets(0.9, 0.9, "max") and not meets(0.8, 0.9, "max")
    with pytest.raises(ValueError, match="expected 'min' or 'max'"):
        meets(0.1, 0.1, "low")  # type: ignore[arg-type]
