from __future__ import annotations

import sys
from pathlib import Path

import pytest
from turboasgi.importer import ImportFromStringError, import_from_string

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throw-away package on sys.path: ``tapp.main`` has ``app``, ``obj.inner.value`` and a
    module importing a missing dependency."""
    root = tmp_path / "tapp"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "main.py").write_text(
        "class Inner:\n    value = 42\n\nclass Obj:\n    inner = Inner()\n\nobj = Obj()\n\n"
        "async def app(scope, receive, send):\n    pass\n"
    )
    (root / "broken.py").write_text("import definitely_not_installed_xyz  # noqa\napp = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    for name in [m for m in sys.modules if m == "tapp" or m.startswith("tapp.")]:
        del sys.modules[name]


def test_imports_attribute(pkg: Path) -> None:
    app = import_from_string("tapp.main:app")
    assert callable(app) and app.__name__ == "app"


def test_dotted_attribute(pkg: Path) -> None:
    assert import_from_string("tapp.main:obj.inner.value") == 42


def test_non_string_is_returned_unchanged() -> None:
    marker = object()
    assert import_from_string(marker) is marker


@pytest.mark.parametrize("bad", ["tapp.main", "tapp.main:", ":app", ""])
def test_bad_format(bad: str) -> None:
    with pytest.raises(ImportFromStringError) as info:
        import_from_string(bad)
    assert str(info.value) == f'Import string "{bad}" must be in format "<module>:<attribute>".'


def test_missing_module(pkg: Path) -> None:
    with pytest.raises(ImportFromStringError) as info:
        import_from_string("tapp.nope:app")
    assert str(info.value) == 'Could not import module "tapp.nope".'


def test_missing_attribute(pkg: Path) -> None:
    with pytest.raises(ImportFromStringError) as info:
        import_from_string("tapp.main:obj.missing")
    assert str(info.value) == 'Attribute "obj.missing" not found in module "tapp.main".'


def test_missing_dependency_inside_the_module_is_not_masked(pkg: Path) -> None:
    with pytest.raises(ModuleNotFoundError) as info:
        import_from_string("tapp.broken:app")
    assert info.value.name == "definitely_not_installed_xyz"
    assert not isinstance(info.value, ImportFromStringError)


def test_error_inside_the_module_propagates(pkg: Path) -> None:
    (pkg / "raises.py").write_text("raise RuntimeError('boom at import')\n")
    with pytest.raises(RuntimeError, match="boom at import"):
        import_from_string("tapp.raises:app")
