"""Log formatters and the default logging configuration (uvicorn-compatible output).

Loggers: ``turboasgi`` (parent, stderr), ``turboasgi.error`` (server messages) and ``turboasgi.access``
(one line per response, stdout).
"""

from __future__ import annotations

import http
import logging
import sys
from copy import copy
from typing import Any, Literal

__all__ = [
    "TRACE_LOG_LEVEL",
    "LOGGING_CONFIG",
    "ColourizedFormatter",
    "DefaultFormatter",
    "AccessFormatter",
    "style",
]

TRACE_LOG_LEVEL = 5

_FG = {
    "black": 30,
    "red": 31,
    "green": 32,
    "yellow": 33,
    "blue": 34,
    "magenta": 35,
    "cyan": 36,
    "white": 37,
    "bright_red": 91,
    "bright_white": 97,
}


def style(text: str, fg: str | None = None, bold: bool = False) -> str:
    """Wrap ``text`` in ANSI escape codes (foreground colour and/or bold), reset afterwards."""
    codes: list[str] = []
    if fg is not None:
        codes.append(str(_FG[fg]))
    if bold:
        codes.append("1")
    if not codes:
        return text
    return f"\x1b[{';'.join(codes)}m{text}\x1b[0m"


_LEVEL_COLOURS: dict[int, str] = {
    TRACE_LOG_LEVEL: "blue",
    logging.DEBUG: "cyan",
    logging.INFO: "green",
    logging.WARNING: "yellow",
    logging.ERROR: "red",
    logging.CRITICAL: "bright_red",
}

_STATUS_COLOURS: dict[int, str] = {
    1: "bright_white",
    2: "green",
    3: "yellow",
    4: "red",
    5: "bright_red",
}


class ColourizedFormatter(logging.Formatter):
    """A formatter that provides ``%(levelprefix)s``: ``"INFO:"`` padded to 10 columns (with the
    separating space of the format string), coloured when ``use_colors`` is on.

    ``use_colors=None`` means: colour when the stream this formatter is meant for is a terminal.
    A record may carry ``extra={"color_message": ...}``, used instead of ``msg`` when colouring.
    """

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        use_colors: bool | None = None,
    ) -> None:
        if use_colors is None:
            self.use_colors = self.should_use_colors()
        else:
            self.use_colors = bool(use_colors)
        super().__init__(fmt=fmt, datefmt=datefmt, style=style)

    def should_use_colors(self) -> bool:
        return sys.stdout.isatty()

    def color_level_name(self, level_name: str, level_no: int) -> str:
        colour = _LEVEL_COLOURS.get(level_no)
        return style(level_name, fg=colour) if colour else level_name

    def formatMessage(self, record: logging.LogRecord) -> str:
        rec = copy(record)
        level_name = rec.levelname
        padding = " " * max(8 - len(level_name), 0)
        if self.use_colors:
            level_name = self.color_level_name(level_name, rec.levelno)
            color_message = rec.__dict__.get("color_message")
            if color_message is not None:
                rec.msg = color_message
                rec.__dict__["message"] = rec.getMessage()
        rec.__dict__["levelprefix"] = f"{level_name}:{padding}"
        return super().formatMessage(rec)


class DefaultFormatter(ColourizedFormatter):
    """Formatter for server messages (written to stderr)."""

    def should_use_colors(self) -> bool:
        return sys.stderr.isatty()


class AccessFormatter(ColourizedFormatter):
    """Formatter for access log records.

    The record's ``args`` are ``(client_addr, method, full_path, http_version, status_code)``; the
    formatter adds ``client_addr``, ``request_line`` (``GET /path?q HTTP/1.1``) and ``status_code``
    (``200 OK``) to the record for the format string.
    """

    def get_status_code(self, status_code: int) -> str:
        try:
            phrase = http.HTTPStatus(status_code).phrase
        except ValueError:
            phrase = ""
        text = f"{status_code} {phrase}"
        if self.use_colors:
            colour = _STATUS_COLOURS.get(status_code // 100)
            if colour:
                return style(text, fg=colour)
        return text

    def formatMessage(self, record: logging.LogRecord) -> str:
        rec = copy(record)
        args: Any = rec.args
        client_addr, method, full_path, http_version, status_code = args
        request_line = f"{method} {full_path} HTTP/{http_version}"
        if self.use_colors:
            request_line = style(request_line, bold=True)
        rec.__dict__["client_addr"] = client_addr
        rec.__dict__["request_line"] = request_line
        rec.__dict__["status_code"] = self.get_status_code(int(status_code))
        return super().formatMessage(rec)


LOGGING_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {
            "()": "turboasgi.logging.DefaultFormatter",
            "fmt": "%(levelprefix)s %(message)s",
            "use_colors": None,
        },
        "access": {
            "()": "turboasgi.logging.AccessFormatter",
            "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
        },
    },
    "handlers": {
        "default": {
            "formatter": "default",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
        },
        "access": {
            "formatter": "access",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
        },
    },
    "loggers": {
        "turboasgi": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "turboasgi.error": {"level": "INFO"},
        "turboasgi.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}
