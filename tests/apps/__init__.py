"""Small ASGI applications served by the server-behaviour tests (``tests.apps.probe:app`` ...)."""
