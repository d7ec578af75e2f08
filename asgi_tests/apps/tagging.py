"""A JSON encoding that keeps Python types, so tests can check what type the server used.

``tag(value)`` turns a value into JSON-safe nested lists such as ``["bytes", "abc"]`` (bytes as
latin-1 text); ``untag`` rebuilds the value. Unknown objects become :class:`Opaque`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Opaque:
    """A value of a type the JSON encoding does not know (reported by type name and repr)."""

    type_name: str
    text: str


def tag(value: Any) -> Any:
    if value is None:
        return ["none"]
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int):
        return ["int", value]
    if isinstance(value, float):
        return ["float", value]
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, bytes):
        return ["bytes", value.decode("latin-1")]
    if isinstance(value, bytearray):
        return ["bytearray", bytes(value).decode("latin-1")]
    if isinstance(value, list):
        return ["list", [tag(v) for v in value]]
    if isinstance(value, tuple):
        return ["tuple", [tag(v) for v in value]]
    if isinstance(value, dict):
        return ["dict", [[tag(k), tag(v)] for k, v in value.items()]]
    return ["other", type(value).__name__, repr(value)[:200]]


def untag(data: Any) -> Any:
    kind = data[0]
    if kind == "none":
        return None
    if kind in ("bool", "int", "float", "str"):
        return data[1]
    if kind == "bytes":
        return data[1].encode("latin-1")
    if kind == "bytearray":
        return bytearray(data[1].encode("latin-1"))
    if kind == "list":
        return [untag(v) for v in data[1]]
    if kind == "tuple":
        return tuple(untag(v) for v in data[1])
    if kind == "dict":
        return {_hashable(untag(k)): untag(v) for k, v in data[1]}
    return Opaque(data[1], data[2])


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, bytearray, dict)):
        return Opaque(type(value).__name__, repr(value))
    return value
