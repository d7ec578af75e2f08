"""Probe ASGI applications served by the server under test.

They report what the server handed them (scope contents with value types, ``receive()`` event
sequences, exceptions raised by ``send()``, disconnect timings) through their responses or through a
side channel (``GET /observed/{id}``), so every assertion in the suite is made from outside the server.
"""
