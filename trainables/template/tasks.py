"""Template tasks as data: templates and the vocabulary layout (sampling.py draws samples from them).

A *template* is a fixed-length sequence of wildcards and regular tokens with a label. A *sample*
substitutes every wildcard by a symbol from one split's alphabet, injectively (distinct wildcards
get distinct symbols). Spelling used in configs: a token that starts with a lowercase letter is a
wildcard (``a``, ``b``, ``x1``); anything else is a regular token (``A``, ``R0``, ``7``).

Vocabulary layout (as in the paper's code, github.com/eboix/relational-reasoning,
``experiments/dataset_utils.py``)::

    [wildcard markers][regular tokens][train alphabet][val alphabet][test alphabet]

The three alphabets are disjoint, so test samples contain only symbols never seen in training.
The train alphabet has exactly ``n_train`` symbols (the paper's n = #samples = alphabet size).

Sampling follows the paper's code: the number of samples per template is drawn multinomially
from the template probabilities; each sample draws its own injective substitution uniformly from
the split's alphabet, independently of the other samples (so with n samples over n symbols some
symbols appear several times and about 1/e of them never do). Two deliberate differences: wildcard
markers are numbered in order of first appearance (the code iterates over a Python set), and the
draws come from a ``torch.Generator`` so every member of a stack owns its own stream. This module imports
no torch: validating a spec (config.py) stays fast.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

LabelKind = Literal["regression", "symbolic"]


def is_wildcard(token: str) -> bool:
    return token[:1].islower()


@dataclass(frozen=True)
class Template:
    """One template: its tokens and its label (a float for regression, a token for symbolic)."""

    tokens: tuple[str, ...]
    label: float | str

    def wildcards(self) -> list[str]:
        """The distinct wildcards in order of first appearance."""
        return list(dict.fromkeys(t for t in self.tokens if is_wildcard(t)))

    def pattern(self) -> tuple[object, ...]:
        """Canonical form up to renaming wildcards: equal patterns mean equivalent templates."""
        index = {w: i for i, w in enumerate(self.wildcards())}
        return tuple(("*", index[t]) if t in index else t for t in self.tokens)

    def __str__(self) -> str:
        return " ".join(self.tokens)


@dataclass(frozen=True)
class Task:
    """A list of pairwise non-equivalent templates of one length, their labels and probabilities."""

    templates: tuple[Template, ...]
    probs: tuple[float, ...]
    label_kind: LabelKind

    def __post_init__(self) -> None:
        if not self.templates:
            raise ValueError("a task needs at least one template")
        if len(self.probs) != len(self.templates):
            raise ValueError("need one probability per template")
        if len({len(t.tokens) for t in self.templates}) != 1:
            raise ValueError("all templates must have the same length")
        seen: dict[tuple[object, ...], Template] = {}
        for t in self.templates:
            other = seen.setdefault(t.pattern(), t)
            if other is not t:
                raise ValueError(
                    f"templates '{other}' and '{t}' are equivalent (equal up to renaming wildcards)"
                )
        for t in self.templates:
            if self.label_kind == "symbolic" and not isinstance(t.label, str):
                raise ValueError(
                    f"template '{t}': a symbolic label must be a token, got {t.label!r}"
                )
            if self.label_kind == "regression" and isinstance(t.label, str):
                raise ValueError(
                    f"template '{t}': a regression label must be a number, got {t.label!r}"
                )
            if isinstance(t.label, str) and is_wildcard(t.label) and t.label not in t.wildcards():
                raise ValueError(f"template '{t}': label wildcard {t.label!r} does not occur in it")

    @property
    def length(self) -> int:
        return len(self.templates[0].tokens)

    @property
    def max_wildcards(self) -> int:
        return max(len(t.wildcards()) for t in self.templates)


@dataclass(frozen=True)
class Vocab:
    """Index layout of the vocabulary; ``*_range`` are half-open [lo, hi) index ranges."""

    wildcards: tuple[str, ...]
    regular: tuple[str, ...]
    n_train: int
    n_val: int
    n_test: int

    @classmethod
    def for_task(cls, task: Task, n_train: int, n_val: int, n_test: int) -> "Vocab":
        wild: dict[str, None] = {}
        regular: dict[str, None] = {}
        for t in task.templates:
            for tok in t.tokens:
                (wild if is_wildcard(tok) else regular)[tok] = None
        for t in (
            task.templates
        ):  # a regular symbolic label joins the vocabulary even if unused as input
            if isinstance(t.label, str) and not is_wildcard(t.label):
                regular[t.label] = None
        return cls(tuple(wild), tuple(regular), n_train, n_val, n_test)

    @property
    def train_range(self) -> tuple[int, int]:
        lo = len(self.wildcards) + len(self.regular)
        return lo, lo + self.n_train

    @property
    def val_range(self) -> tuple[int, int]:
        lo = self.train_range[1]
        return lo, lo + self.n_val

    @property
    def test_range(self) -> tuple[int, int]:
        lo = self.val_range[1]
        return lo, lo + self.n_test

    @property
    def size(self) -> int:
        return self.test_range[1]

    def index(self, token: str) -> int:
        if is_wildcard(token):
            return self.wildcards.index(token)
        return len(self.wildcards) + self.regular.index(token)


def parse_templates(spec: object) -> tuple[list[Template], list[float] | None]:
    """Templates from a config value: a list of {tokens: "a b a", label: 1, prob: 0.5} mappings.

    Raises ValueError with a message saying what was expected.
    """
    if not isinstance(spec, (list, tuple)) or not spec:
        raise ValueError("expected a non-empty list of {tokens: 'a b a', label: ..., prob: ...}")
    templates, probs = [], []
    for i, item in enumerate(spec):
        if not isinstance(item, dict) or "tokens" not in item or "label" not in item:
            raise ValueError(
                f"item {i}: expected a mapping with 'tokens' and 'label' (and optional 'prob')"
            )
        extra = set(item) - {"tokens", "label", "prob"}
        if extra:
            raise ValueError(
                f"item {i}: unknown field(s) {sorted(extra)}; expected tokens, label, prob"
            )
        tokens = (
            item["tokens"].split()
            if isinstance(item["tokens"], str)
            else [str(t) for t in item["tokens"]]
        )
        if not tokens:
            raise ValueError(f"item {i}: expected at least one token")
        label = item["label"]
        if isinstance(label, bool) or not isinstance(label, (int, float, str)):
            raise ValueError(f"item {i}: expected a number or a token as label, got {label!r}")
        templates.append(
            Template(tuple(tokens), float(label) if isinstance(label, (int, float)) else label)
        )
        probs.append(item.get("prob"))
    if all(p is None for p in probs):
        return templates, None
    if any(p is None for p in probs):
        raise ValueError("give 'prob' for every template or for none")
    if any(not isinstance(p, (int, float)) or p < 0 for p in probs) or sum(probs) <= 0:
        raise ValueError("expected non-negative template probabilities with a positive sum")
    total = float(sum(probs))
    return templates, [float(p) / total for p in probs]


def make_task(templates: list[Template], probs: list[float] | None = None) -> Task:
    """A Task whose label kind follows its labels (all numbers: regression; all tokens: symbolic)."""
    kinds = {isinstance(t.label, str) for t in templates}
    if len(kinds) != 1:
        raise ValueError("labels must be all numbers (regression) or all tokens (symbolic)")
    kind: LabelKind = "symbolic" if kinds.pop() else "regression"
    probs = probs or [1.0 / len(templates)] * len(templates)
    return Task(tuple(templates), tuple(probs), kind)


NAMED_TASKS: dict[str, list[Template]] = {
    "copy": [Template(("a",), "a")],
    "same_different": [Template(("a", "a"), 1.0), Template(("a", "b"), -1.0)],
    "aba_abb": [Template(("a", "b", "a"), 1.0), Template(("a", "b", "b"), -1.0)],
    "aabb_abab": [Template(("a", "a", "b", "b"), 1.0), Template(("a", "b", "a", "b"), -1.0)],
}


def wildcard_name(i: int) -> str:
    return "abcdefghijklmnopqrstuvwxyz"[i] if i < 26 else f"w{i}"


def random_templates(
    n_templates: int,
    n_wildcards: int,
    n_regular: int,
    length: int,
    seed: int,
    max_tries: int = 10_000,
) -> list[Template]:
    """``n_templates`` pairwise non-equivalent random templates with balanced ±1 labels (ours).

    Each position is uniform over the ``n_wildcards`` wildcards and ``n_regular`` regular tokens;
    a draw equivalent to an earlier template is redrawn. Labels: a random half (rounded up) of
    the templates get +1, the rest −1, so that predicting 0 scores test loss 1 (chance), as in
    the paper's regression plots. The paper's notebook is not public: this generator is ours.
    """
    rng = random.Random(seed)
    tokens = [wildcard_name(i) for i in range(n_wildcards)] + [f"R{i}" for i in range(n_regular)]
    found: dict[tuple[object, ...], tuple[str, ...]] = {}
    for _ in range(max_tries):
        if len(found) == n_templates:
            break
        candidate = tuple(rng.choice(tokens) for _ in range(length))
        found.setdefault(Template(candidate, 0.0).pattern(), candidate)
    if len(found) < n_templates:
        raise ValueError(
            f"found only {len(found)} distinct templates of length {length} over {n_wildcards} "
            f"wildcards and {n_regular} regular tokens in {max_tries} draws"
        )
    labels = [1.0] * ((n_templates + 1) // 2) + [-1.0] * (n_templates // 2)
    rng.shuffle(labels)
    return [Template(t, y) for t, y in zip(found.values(), labels)]
