"""Log formatters, the default logging configuration (uvicorn-compatible output), and what makes a
logging configuration written for uvicorn apply to turboasgi.

Loggers: ``turboasgi`` (parent, stderr), ``turboasgi.error`` (server messages) and ``turboasgi.access``
(one line per response, stdout).

A configuration that sets up uvicorn's loggers (``uvicorn``, ``uvicorn.error``, ``uvicorn.access``)
and none of turboasgi's gets each turboasgi logger forwarded to its uvicorn counterpart
(``forward_to_uvicorn``): the records then go through that logger's level, filters, handlers and
formatters, under the uvicorn name, exactly as uvicorn's own records would.
"""

from __future__ import annotations

import http
import logging
import sys
from copy import copy
from typing import Any, Literal

__all__ = [
    "TRACE_LOG_LEVEL",
    "UVICORN_COUNTERPARTS",
    "ForwardHandler",
    "configured_logger_names",
    "forward_to_uvicorn",
    "has_output",
    "uses_uvicorn_loggers",
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
        return super().formatMessage(self.with_level_prefix(record))

    def with_level_prefix(self, record: logging.LogRecord) -> logging.LogRecord:
        """A copy of ``record`` with ``levelprefix`` (``INFO:     ``, coloured when enabled) set."""
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
        return rec


class DefaultFormatter(ColourizedFormatter):
    """Formatter for server messages (written to stderr)."""

    def should_use_colors(self) -> bool:
        return sys.stderr.isatty()


_PREFORMATTED = logging.PercentStyle("%(levelprefix)s %(message)s")


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
        if not args:
            # A line written by --access-log-format: the operator's template replaces the format's
            # request fields; the level prefix stays.
            return _PREFORMATTED.format(self.with_level_prefix(rec))
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


# ------------------------------------------------------------------------------ uvicorn log configs

UVICORN_COUNTERPARTS: dict[str, str] = {
    "turboasgi": "uvicorn",
    "turboasgi.error": "uvicorn.error",
    "turboasgi.access": "uvicorn.access",
    "turboasgi.asgi": "uvicorn.asgi",
}
"""Each turboasgi logger and the uvicorn logger that plays the same part."""

# A configuration written for uvicorn names uvicorn's formatter classes; ours take the same arguments
# and the same records, and uvicorn need not be installed.
_UVICORN_FORMATTER_MODULE = "uvicorn.logging."
_OUR_FORMATTER_MODULE = "turboasgi.logging."


def _in_namespace(name: str, root: str) -> bool:
    return name == root or name.startswith(root + ".")


def uses_uvicorn_loggers(names: set[str]) -> bool:
    """True for a configuration of uvicorn's loggers that does not configure turboasgi's."""
    return any(_in_namespace(n, "uvicorn") for n in names) and not any(
        _in_namespace(n, "turboasgi") for n in names
    )


def translate_formatter_classes(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a dictConfig dict in which ``uvicorn.logging.X`` formatter classes are ours."""
    formatters = config.get("formatters")
    if not isinstance(formatters, dict):
        return config
    translated = dict(config)
    translated["formatters"] = {}
    for name, spec in formatters.items():
        if isinstance(spec, dict):
            spec = dict(spec)
            for key in ("()", "class"):
                value = spec.get(key)
                if isinstance(value, str) and value.startswith(_UVICORN_FORMATTER_MODULE):
                    spec[key] = _OUR_FORMATTER_MODULE + value[len(_UVICORN_FORMATTER_MODULE) :]
        translated["formatters"][name] = spec
    return translated


def translate_ini_formatter_classes(parser: Any) -> None:
    """The same for a ``fileConfig`` parser (``[formatter_x]`` sections, ``class=`` option), in place."""
    for section in parser.sections():
        if section.startswith("formatter_") and parser.has_option(section, "class"):
            value = parser.get(section, "class", raw=True)
            if value.startswith(_UVICORN_FORMATTER_MODULE):
                parser.set(section, "class", _OUR_FORMATTER_MODULE + value[len(_UVICORN_FORMATTER_MODULE) :])


def configured_logger_names(config: Any) -> set[str]:
    """The loggers a dictConfig dict or a fileConfig parser sets up (the root logger excluded)."""
    if isinstance(config, dict):
        loggers = config.get("loggers")
        return set(loggers) if isinstance(loggers, dict) else set()
    names: set[str] = set()
    if not config.has_option("loggers", "keys"):
        return names
    for key in config.get("loggers", "keys", raw=True).split(","):
        key = key.strip()
        if not key or key == "root":
            continue
        names.add(config.get(f"logger_{key}", "qualname", raw=True, fallback=key).strip())
    return names


class ForwardHandler(logging.Handler):
    """Hands each record to another logger, renamed to it, when that logger's level lets it through;
    that logger's filters, handlers and propagation then apply as to its own records."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        # What Logger.handle does, by hand: CPython 3.13's recursion guard makes every logger refuse
        # records while the thread is inside a handler, and this call always is.
        target = logging.getLogger(self.target)
        if target.disabled or record.levelno < target.getEffectiveLevel():
            return
        forwarded = copy(record)
        forwarded.name = self.target
        filtered = target.filter(forwarded)
        if filtered:
            target.callHandlers(filtered if isinstance(filtered, logging.LogRecord) else forwarded)


def forward_to_uvicorn() -> None:
    """Route every turboasgi logger to its uvicorn counterpart (see the module docstring). The
    turboasgi loggers take their counterpart's effective level, so that a disabled level costs no
    record, and are re-enabled if the configuration disabled them as unnamed existing loggers (their
    counterparts decide now)."""
    for ours, theirs in UVICORN_COUNTERPARTS.items():
        logger = logging.getLogger(ours)
        logger.handlers = [ForwardHandler(theirs)]
        logger.propagate = False
        logger.disabled = False
        logger.setLevel(logging.getLogger(theirs).getEffectiveLevel())


def has_output(logger: logging.Logger) -> bool:
    """Whether records of ``logger`` can reach a handler (following forwarding to uvicorn loggers)."""
    for handler in logger.handlers:
        if isinstance(handler, ForwardHandler):
            if has_output(logging.getLogger(handler.target)):
                return True
        else:
            return True
    if logger.propagate and logger.parent is not None:
        return has_output(logger.parent)
    return False
