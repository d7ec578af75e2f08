"""Why each known failure happens, per server (checked by hand); used by ``report.py``.

Keys are ``module.py::test_name[param]`` as they appear in the report.
"""

NOTES: dict[str, dict[str, str]] = {}
