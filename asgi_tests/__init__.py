"""asgi_tests: a black-box pytest conformance suite for ASGI servers.

Run ``pytest --pyargs asgi_tests --asgi-server uvicorn`` (or ``--asgi-server-cmd "..."``); see README.md.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
