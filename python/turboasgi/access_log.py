"""``--access-log-format``: the access line as the operator writes it, from a fixed set of atoms.

The template uses ``str.format`` fields (their values are text, so a format spec may set width and
alignment), e.g. ``'{client} "{method} {path}{query}" {status} {bytes}
{duration_ms}'``; every field is checked against ``ATOMS`` once, at startup, so a typo is a one-line
configuration error instead of a failure on the first request. Only the atoms a template uses are
computed per request.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

Scope = dict[str, Any]


def _header(name: bytes) -> Callable[[Scope], str]:
    def value(scope: Scope) -> str:
        for key, val in scope["headers"]:
            if key == name:
                return str(val.decode("latin-1"))
        return "-"

    return value


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


def _query(scope: Scope) -> str:
    query: bytes = scope["query_string"]
    return "?" + query.decode("ascii", "replace") if query else ""


# Atoms that depend on the request only; status, bytes and duration_ms come from the response.
REQUEST_ATOMS: dict[str, Callable[[Scope], str]] = {
    "client": _client,
    "method": lambda scope: str(scope["method"]),
    "path": lambda scope: quote(scope["path"]),
    "query": _query,
    "http_version": lambda scope: str(scope["http_version"]),
    "scheme": lambda scope: str(scope["scheme"]),
    "request_id": _header(b"x-request-id"),
    "user_agent": _header(b"user-agent"),
    "referer": _header(b"referer"),
}
ATOMS = (*REQUEST_ATOMS, "status", "bytes", "duration_ms")


class AccessLogFormat:
    """A checked ``--access-log-format`` template."""

    def __init__(self, template: str) -> None:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
        for field in fields:
            if field not in ATOMS:
                name = field or "{}"
                raise ValueError(
                    f"--access-log-format: unknown field {name!r}; the fields are {', '.join(ATOMS)}"
                )
        try:  # a bad format spec fails here, not on the first request
            template.format_map(dict.fromkeys(ATOMS, "-"))
        except (ValueError, IndexError, KeyError) as exc:
            raise ValueError(f"--access-log-format: {exc}") from None
        self.template = template
        self.request_atoms = [(f, REQUEST_ATOMS[f]) for f in dict.fromkeys(fields) if f in REQUEST_ATOMS]

    def render(self, scope: Scope, status: int, length: int | None, duration: float | None) -> str:
        values = {name: atom(scope) for name, atom in self.request_atoms}
        values["status"] = str(status)
        values["bytes"] = "-" if length is None else str(length)
        values["duration_ms"] = "-" if duration is None else f"{duration * 1000:.3f}"
        return self.template.format_map(values)
