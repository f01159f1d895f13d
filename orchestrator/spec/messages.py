"""pydantic's validation errors as the one line a researcher reads: the field, what was expected, what came.

pydantic reports a union's failure once per member, with the member's type inside the location
(``axes.size.0.bool: Input should be a valid boolean``): the location a reader needs is the value's, and
what was expected is the members together. Which location elements are such tags is read off the input
itself: an element that is not a key or index of the data at that point.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from orchestrator.spec.columns import short
from trainables.keys import suggest

_TAG_WORDS = {"bool": "a boolean", "int": "an integer", "float": "a number", "str": "a string"}
_WORD_ORDER = ["a number", "an integer", "a string", "a boolean", "a mapping"]
_EXPECTED = {  # pydantic's error types in the words of a YAML file's reader
    **dict.fromkeys(
        ("int_type", "int_parsing", "int_parsing_size", "int_from_float"), "expected an integer"
    ),
    **dict.fromkeys(("float_type", "float_parsing"), "expected a number"),
    **dict.fromkeys(("bool_type", "bool_parsing"), "expected true or false"),
    **dict.fromkeys(("dict_type", "model_type", "model_attributes_type"), "expected a mapping"),
    "string_type": "expected a string",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "finite_number": "expected a finite number",
    "too_long": "expected at most {max_length} items",
    "too_short": "expected at least {min_length} items",
    "greater_than": "expected a value > {gt}",
    "greater_than_equal": "expected a value ≥ {ge}",
    "less_than": "expected a value < {lt}",
    "less_than_equal": "expected a value ≤ {le}",
}


def format_validation_error(err: ValidationError, raw: Any, model: type[BaseModel]) -> str:
    """The first of ``err``'s problems with ``raw`` (the input of ``model``) as ``field: expected ...``."""
    errors = err.errors(include_url=False)
    first = errors[0]
    path, tag_at = _walk(first, raw)
    if tag_at is not None:
        branches = [e for e in errors if e["loc"][:tag_at] == first["loc"][:tag_at]]
        if len({e["loc"][tag_at] for e in branches if len(e["loc"]) > tag_at}) > 1:
            return _union(branches, raw, tag_at, model)
    return _line(first, path, model)


def _walk(error: ErrorDetails, raw: Any) -> tuple[list[Any], int | None]:
    """The data's own location of an error, and the position of the first union tag in its ``loc``."""
    node, path, tag_at = raw, [], None
    loc = error["loc"]
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif error["type"] == "missing" and i == len(loc) - 1:
            pass  # the missing field's name
        else:
            tag_at = i if tag_at is None else tag_at
            continue
        path.append(part)
    return path, tag_at


def _union(branches: list[ErrorDetails], raw: Any, tag_at: int, model: type[BaseModel]) -> str:
    """A member the value entered (a mapping for a model member) says what is wrong inside it; else the
    members together say what was expected."""
    where = _walk(branches[0], raw)[0]
    for error in branches:
        path, _ = _walk(error, raw)
        if len(path) > len(where):
            return _line(error, path, model)
    words = [_tag_word(str(e["loc"][tag_at])) for e in branches if len(e["loc"]) > tag_at]
    if "a number" in words:
        words = [w for w in words if w != "an integer"]
    words = sorted(set(words), key=lambda w: (_WORD_ORDER + [w]).index(w))
    expected = ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]
    return f"{'.'.join(map(str, where))}: expected {expected} (got {short(branches[0]['input'])})"


def _tag_word(tag: str) -> str:
    if tag.startswith("literal[") and tag.endswith("]"):
        return " or ".join(v.strip().strip("'\"") for v in tag[len("literal[") : -1].split(","))
    return _TAG_WORDS.get(tag, "a mapping")


def _line(error: ErrorDetails, path: list[Any], model: type[BaseModel]) -> str:
    loc = ".".join(map(str, path))
    kind, msg = error["type"], error["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return f"{loc}: unknown key; {suggest(str(path[-1]), _fields_at(model, path[:-1]))}"
    if kind == "missing" and isinstance(path[-1], int):  # a tuple's item: [low] for [low, high]
        return f"{'.'.join(map(str, path[:-1]))}: expected more items (got {short(error['input'])})"
    if kind == "missing":
        return f"{loc}: required field is missing"
    if kind == "string_too_long":
        return f"{loc}: expected at most {error['ctx']['max_length']} characters (got {len(error['input'])})"
    if kind not in ("value_error", "assertion_error"):
        msg = _EXPECTED.get(kind, "").format(**error.get("ctx", {})) or (
            msg.replace("Input should be", "expected")
            .replace("String should", "expected a string to")
            .replace("should have", "expected to have")
        )
        msg = f"{msg} (got {short(error['input'])})"
    return f"{loc}: {msg}" if loc else msg


def _fields_at(model: type[BaseModel], path: list[Any]) -> list[str]:
    """The field names of the model at ``path`` inside ``model`` (through dicts, lists and unions)."""
    hint: Any = model
    for part in path:
        hint = next((h for h in map(_inside(part), _members(hint)) if h is not None), None)
    models = [m for m in _members(hint) if isinstance(m, type) and issubclass(m, BaseModel)]
    return sorted(models[0].model_fields) if models else []


def _members(hint: Any) -> list[Any]:
    if get_origin(hint) in (Union, types.UnionType):
        return [m for arg in get_args(hint) for m in _members(arg)]
    return [hint]


def _inside(part: Any) -> Callable[[Any], Any]:
    """One step into a type hint: a model's field, a dict's values, a list's items (None: not there)."""

    def step(hint: Any) -> Any:
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            field = hint.model_fields.get(part) if isinstance(part, str) else None
            return field.annotation if field else None
        args = get_args(hint)
        if get_origin(hint) is dict and args:
            return args[1]
        if get_origin(hint) in (list, tuple) and args and isinstance(part, int):
            return args[0]
        return None

    return step
