"""A small Django project (async views, a streaming response) with a Channels WebSocket consumer."""
