"""A spec's YAML, read so that what a researcher wrote is what runs, and nothing written can hang the driver.

PyYAML reads YAML 1.1, where ``1e-2`` is a *string* (it needs a dot: ``1.0e-2``): an axis ``[0.001, 1e-2]``
then mixes types and the sweep dies writing Parquet. Numbers here are YAML 1.2's (``1e-2``, ``1E5``,
``.5`` are floats; ``0x1F`` and ``0o17`` are integers; ``017`` is 17), plus ``_`` between digits
(``10_000``); YAML 1.1's sexagesimal (``1:30``) and timestamps are strings. Booleans stay YAML 1.1's
(``yes``/``no``/``on``/``off`` too), so that existing specs keep their meaning.

Also refused, each with the line: a key given twice in one mapping (YAML keeps the last silently), and
documents that aliases expand past :data:`MAX_NODES` values (a "billion laughs" spec would otherwise take
minutes and gigabytes), alias cycles and nesting past Python's recursion. Tags are the safe loader's:
``!!python/...`` is refused.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_NODES = 100_000
"""Values a document may hold once its aliases are expanded: an axis of tens of thousands of values fits."""

MAX_DEPTH = 64
"""Nesting at most: a spec's own is a handful of levels; deeper structures make repr and JSON recurse."""

MAX_BYTES = 2**20
"""A spec file's size at most (1 MiB, ~100,000 values): reading more in pure-Python YAML takes seconds."""

INT, FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_DIGITS = r"[0-9]+(?:_[0-9]+)*"  # Python's digit grouping: 10_000, not 1__0 nor 1_
_INT = re.compile(rf"^(?:[-+]?{_DIGITS}|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    rf"^(?:[-+]?(?:\.{_DIGITS}|{_DIGITS}(?:\.(?:{_DIGITS})?)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_NUMBER_START = list("-+.0123456789")


class YamlError(ValueError):
    """Text that is not a spec's YAML; the message says where (line) and why, without the file name."""


def _numbers_as_yaml_12(resolvers: dict[Any, list]) -> dict[Any, list]:
    """YAML 1.1's implicit resolvers without its ints, floats and timestamps, with YAML 1.2's numbers."""
    dropped = (INT, FLOAT, "tag:yaml.org,2002:timestamp")
    out = {first: [(t, rx) for t, rx in rs if t not in dropped] for first, rs in resolvers.items()}
    for first in _NUMBER_START:
        out.setdefault(first, []).extend([(INT, _INT), (FLOAT, _FLOAT)])
    return out


class _Loader(yaml.SafeLoader):
    """The pure-Python safe loader (its composer can be bounded; libyaml's cannot), counting nodes."""

    yaml_implicit_resolvers = _numbers_as_yaml_12(yaml.SafeLoader.yaml_implicit_resolvers)

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._composed = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self._composed += 1
        if self._composed > MAX_NODES:  # a huge flat document stops here, before it is all parsed
            problem = f"more than {MAX_NODES:,} values; expected a smaller spec"
            raise _marked(problem, self.peek_event())
        return super().compose_node(parent, index)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        # an explicit tag on a value it cannot read: !!float abc, !!timestamp 2024-13-01
        except (ValueError, TypeError, OverflowError) as err:
            what = repr(node.value) if isinstance(node, ScalarNode) else "this value"
            raise _marked(f"cannot read {what} as {node.tag}: {err}", node) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        """YAML keeps the last of two equal keys; a spec that gives one twice is a mistake to show."""
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = key in first_line
            except TypeError:  # unhashable: the base class says so, with its line
                continue
            if seen:
                raise _marked(
                    f"key {key!r} given twice (first at line {first_line[key]}); expected each key once",
                    key_node,
                )
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _int(loader: _Loader, node: ScalarNode) -> int:
    text = loader.construct_scalar(node).replace("_", "")
    sign, digits = (-1, text[1:]) if text[:1] == "-" else (1, text.lstrip("+"))
    base = {"0x": 16, "0o": 8}.get(digits[:2].lower(), 10)
    return sign * int(digits[2:] if base != 10 else digits, base)


def _float(loader: _Loader, node: ScalarNode) -> float:
    text = loader.construct_scalar(node).replace("_", "").lower()
    return float(text.replace(".inf", "inf").replace(".nan", "nan"))


_Loader.add_constructor(INT, _int)
_Loader.add_constructor(FLOAT, _float)


class _Marked(yaml.MarkedYAMLError):
    pass


def _marked(problem: str, where: Node | yaml.Event) -> _Marked:
    return _Marked(problem=problem, problem_mark=where.start_mark)


def _check_expansion(root: Node) -> None:
    """Refuse a node graph whose aliases expand past MAX_NODES values, nested past MAX_DEPTH, or that
    contains itself.

    Sizes are counted once per node (an alias reuses its anchor's), so a billion-laughs document costs
    a few dozen steps here instead of a billion when constructed, validated or printed.
    """
    sizes: dict[int, int] = {}
    ancestors: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        children = _children(node)
        if finished:
            ancestors.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[id(node)] > MAX_NODES:
                raise _marked(
                    f"aliases expand this value to more than {MAX_NODES:,} values; expected a smaller spec",
                    node,
                )
        elif id(node) in ancestors:
            raise _marked("an alias refers to the value that contains it; expected no cycles", node)
        elif id(node) not in sizes:
            if len(ancestors) >= MAX_DEPTH:
                raise _marked(f"nested more than {MAX_DEPTH} levels; expected a flatter spec", node)
            ancestors.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in children)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return node.value
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load(text: str) -> Any:
    """The one document in ``text``; a :class:`YamlError` saying where and why when it is not a spec's YAML."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except yaml.reader.ReaderError as err:  # a control character, which YAML does not allow
        line = text.count("\n", 0, err.position) + 1
        character = f"character #x{err.character:04x}"
        raise YamlError(f"not valid YAML at line {line}: {character}: {err.reason}") from None
    except yaml.YAMLError as err:
        raise YamlError(_describe(err)) from None
    except RecursionError:
        raise YamlError("nested too deeply; expected a flatter spec") from None
    finally:
        if loader is not None:
            loader.dispose()


def _describe(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    line = f"line {mark.line + 1}" if mark else ""
    if isinstance(err, _Marked):
        return f"{line}: {err.problem}"
    where = f" at {line}, column {mark.column + 1}" if mark else ""
    problem, context = getattr(err, "problem", None), getattr(err, "context", None)
    if problem and context and problem.startswith("but "):  # "expected a single document, but ..."
        problem = f"{context}, {problem}"
    return f"not valid YAML{where}: {problem or context or 'parse error'}"


class _Dumper(yaml.SafeDumper):
    """Quotes every string that either YAML 1.1 or this module would read as something else, so that
    ``spec.yaml`` in a results directory reads back the same with this loader and with plain PyYAML."""


for _tag, _regexp in ((INT, _INT), (FLOAT, _FLOAT)):
    _Dumper.add_implicit_resolver(_tag, _regexp, _NUMBER_START)


def dump(data: Any) -> str:
    """``data`` as YAML that :func:`load` (and PyYAML's safe loader) read back as ``data``."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)
