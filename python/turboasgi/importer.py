"""Resolve ``"package.module:attr.sub"`` import strings to Python objects."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ImportFromStringError", "import_from_string"]


class ImportFromStringError(Exception):
    """The import string is malformed, or names a module/attribute that does not exist."""


def import_from_string(import_str: Any) -> Any:
    """Return the object named by ``import_str`` (``"module:attribute"``, the attribute may be dotted).

    Anything that is not a ``str`` is returned unchanged, so an app object can be passed where an import
    string is accepted. A ``ModuleNotFoundError`` raised *inside* the imported module (a missing
    dependency of the app) propagates untouched, so the user sees the real culprit.
    """
    if not isinstance(import_str, str):
        return import_str

    module_name, _, attr_path = import_str.partition(":")
    if not module_name or not attr_path:
        raise ImportFromStringError(f'Import string "{import_str}" must be in format "<module>:<attribute>".')

    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise exc from None
        raise ImportFromStringError(f'Could not import module "{module_name}".') from None

    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ImportFromStringError(
                f'Attribute "{attr_path}" not found in module "{module_name}".'
            ) from None
    return target
