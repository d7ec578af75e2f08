"""Loads the suite's pytest plugin when pytest collects this directory (``pytest asgi_tests``).

When the plugin was already loaded up front (``pytest -p asgi_tests.plugin --pyargs asgi_tests``, the
way that works for an installed package), this conftest adds nothing, so no hook runs twice.
"""

import sys

if "asgi_tests.plugin" not in sys.modules:
    from asgi_tests.plugin import (  # noqa: F401 - hooks and fixtures pytest looks up by name
        _record_groups,
        extensions,
        launch,
        pytest_addoption,
        pytest_collection_modifyitems,
        pytest_configure,
        pytest_report_header,
        require_option,
        scope_of,
        server,
        server_kind,
        server_pool,
        spec_version,
    )
