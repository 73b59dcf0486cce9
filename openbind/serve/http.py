"""HTTP plumbing of the server: JSON errors, the bearer token, which hosts need one, and the outermost guard that
refuses oversized bodies while they are read and counts every request for the metrics."""

from __future__ import annotations

import hmac
import ipaddress
import json
import time
from typing import Any

from openbind.serve.metrics import Metrics


class ApiError(Exception):
    """An answer other than 2xx, sent as {"error": {"status", "reason", "input"}}."""

    def __init__(self, status: int, reason: str, input: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.input = input
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"status": self.status, "reason": self.reason, "input": self.input}}


class BodyTooLarge(Exception):
    """Raised while a request body is read, as soon as it passes the limit."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Only a loopback address may be served without a token."""
    if not is_loopback(host) and not token:
        raise ValueError(
            f"--host {host} would expose the index beyond this machine: give --token (or set OPENBIND_TOKEN), or "
            "bind 127.0.0.1 and put a reverse proxy in front"
        )


def token_matches(header: str | None, token: str) -> bool:
    """An `Authorization: Bearer <token>` header with the server's token (compared in constant time)."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class Guard:
    """Pure ASGI middleware: 413 for a body over `max_request_bytes` (its Content-Length, or the bytes read so
    far), and per-endpoint request counts and latencies (the route's template, so ids do not make new series).

    Nothing over the limit is kept. The rest of an oversized body is read and dropped while it stays under twice
    the limit, so an ordinary client that sends its whole body before reading the answer gets the 413; beyond
    that the connection is closed at once."""

    def __init__(self, app, metrics: Metrics, max_request_bytes: int):
        self.app = app
        self.metrics = metrics
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_request_bytes:
                    await self._drain(receive, message, received)
                    raise BodyTooLarge
            return message

        async def counted_send(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if self._declared_length(scope) > self.max_request_bytes:
                self.metrics.rejected.labels("too_large").inc()
                if self._declared_length(scope) <= 2 * self.max_request_bytes:
                    await self._drain(receive, {"more_body": True}, 0)
                await self.too_large(counted_send)
            else:
                await self.app(scope, limited_receive, counted_send)
        finally:
            endpoint = getattr(scope.get("route"), "path", None) or "other"
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)

    async def _drain(self, receive, message, received: int) -> None:
        while message.get("more_body", False) and received <= 2 * self.max_request_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return
            received += len(message.get("body", b""))

    @staticmethod
    def _declared_length(scope) -> int:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0

    async def too_large(self, send) -> None:
        error = ApiError(413, f"request body over the limit of {self.max_request_bytes} bytes")
        body = json.dumps(error.body()).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})
