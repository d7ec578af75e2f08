"""The ASGI entry point as a Django + Channels project has it: HTTP to Django, WebSockets to Channels."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.frameworks.apps.django_site.settings")
# Django must be set up before the consumers (and their imports) are loaded
django_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from tests.frameworks.apps.django_site.consumers import EchoConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_app,
        "websocket": URLRouter([path("ws", EchoConsumer.as_asgi())]),
    }
)
