"""The install instructions users copy (issue 10 item 14): they must work with what the project is, a
source tree not published on an index, and name only extras that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent
MIGRATING = ROOT / "docs" / "migrating-from-uvicorn.md"


def _extras() -> dict[str, list[str]]:
    with open(ROOT / "pyproject.toml", "rb") as file:
        extras: dict[str, list[str]] = tomllib.load(file)["project"]["optional-dependencies"]
    return extras


def _package(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert match, requirement
    return match.group(0).lower()


def test_no_install_from_an_index() -> None:
    """``pip install turboasgi`` / ``"turboasgi[standard]"`` would fetch from PyPI, where the project is
    not published: every pip command installs from a path (a clone or a built wheel)."""
    for doc in (MIGRATING, ROOT / "README.md", ROOT / "docs" / "usage.md"):
        for arguments in re.findall(r"pip install ([^\n`&;#|]*)", doc.read_text()):
            for argument in arguments.split():
                name = argument.strip("\"'")
                assert not re.fullmatch(r"turboasgi(\[[\w,]+\])?", name), (
                    f"{doc.name}: pip install {arguments}"
                )


def test_extras_in_the_docs_exist_and_are_described() -> None:
    text = MIGRATING.read_text()
    extras = _extras()
    for name in set(re.findall(r"\.\[(\w+)\]", text)) | set(re.findall(r"whl\[(\w+)\]", text)):
        assert name in extras, f"docs name the extra [{name}], pyproject.toml has {sorted(extras)}"
    installing = text.split("## Installing", 1)[1].split("\n## ", 1)[0]
    for requirement in extras["standard"]:
        assert f"`{_package(requirement)}`" in installing.lower(), requirement
