"""``python -m asgi_tests [--quick] [pytest options]``: run the conformance suite from an installed
package (pytest's ``-p asgi_tests.plugin --pyargs asgi_tests``), against turboasgi unless
``--asgi-server``/``--asgi-server-cmd`` say otherwise.

``--quick`` runs the ASGI specification assertions only (the ``spec`` marker): the group a packaging
smoke test runs (.ci/smoke-wheel.sh).
"""

from __future__ import annotations

import sys

import pytest

QUICK = ["-m", "spec"]


def main(argv: list[str]) -> int:
    args = list(argv)
    selection: list[str] = []
    if "--quick" in args:
        args.remove("--quick")
        selection = QUICK
    return int(pytest.main(["-p", "asgi_tests.plugin", "--pyargs", "asgi_tests", *selection, *args]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
