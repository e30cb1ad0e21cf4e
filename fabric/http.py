"""The per-node HTTP endpoint: Prometheus ``/metrics``, read-only ``/topology.json`` and a live page.

Theory of operation
-------------------
A deliberately small HTTP/1.1 server on :func:`asyncio.start_server`, running on the node's loop (so it
reads the node's state without locks). It answers ``GET`` and ``HEAD`` only, one request per
connection (``Connection: close``); anything else gets 405, unknown paths 404, requests whose head is
larger than :data:`MAX_HEAD` or slower than :data:`READ_TIMEOUT` are cut off (400/408). It binds
127.0.0.1 by default: it has no authentication, and everything it serves is read-only.

Routes (once :meth:`HttpEndpoint.attach` gave it something to serve, a :class:`HttpSource`):

* ``/metrics`` — Prometheus text format (``HttpSource.metrics_text``);
* ``/topology.json`` — the cluster graph as this node sees it (CORS ``*``, so a page opened from a
  file or another member can poll it);
* ``/`` and ``/topology.html`` — the live topology page polling ``/topology.json``;
* ``/healthz`` — 200 with ``ok`` while the node runs, 503 otherwise.

This module knows nothing of the admin service: it serves any object with the :class:`HttpSource`
methods (the runner attaches the node's :class:`fabric.admin.AdminService`), so imports point one way
only (the admin package does not import this module either).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_HEAD = 8192
"""Most bytes of request line + headers accepted."""
READ_TIMEOUT = 5.0
"""Seconds a client has to send its request head."""
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Content type of ``/metrics`` (the Prometheus text format, version 0.0.4)."""


class HttpSource(Protocol):
    """What the endpoint serves; every method is called on the loop the endpoint runs on."""

    def metrics_text(self) -> bytes:
        """The Prometheus text exposition for ``/metrics``."""

    async def topology(self) -> dict[str, Any]:
        """The cluster graph for ``/topology.json`` (JSON-serialisable)."""

    @property
    def running(self) -> bool:
        """True while the node runs (``/healthz``)."""


class HttpEndpoint:
    """The node's HTTP server (see the module docstring). Start, attach, close on the node's loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._source: HttpSource | None = None
        self.requests = 0
        self.bad_requests = 0
        self.rejections: Counter[str] = Counter()
        """Requests refused, by reason (``head_too_large``, ``timeout``, ``incomplete``, ``bad_request_line``,
        ``method_not_allowed``, ``not_found``): exported on ``/metrics`` as ``fabric_http_rejected_total``."""

    @property
    def refused_methods(self) -> int:
        """Requests refused with 405 (anything but GET and HEAD: the endpoint changes nothing)."""
        return self.rejections["method_not_allowed"]

    def stats(self) -> dict[str, int]:
        """Requests served, malformed ones (400/408, cut off), and non-GET ones refused (405)."""
        return {"requests": self.requests, "bad_requests": self.bad_requests, "refused_methods": self.refused_methods}

    @property
    def url(self) -> str:
        """``http://host:port`` once started."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Listen; raises OSError (address in use, permission)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    def attach(self, source: HttpSource) -> None:
        """Serve ``source`` (until then every route answers 503)."""
        self._source = source

    async def close(self) -> None:
        """Stop listening and close open connections."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            except asyncio.LimitOverrunError:
                self._reject("head_too_large")
                await self._respond(writer, 400, b"request head too large\n")
                return
            except TimeoutError:
                self._reject("timeout")
                return
            except asyncio.IncompleteReadError:
                self._reject("incomplete")
                return
            if len(head) > MAX_HEAD:
                self._reject("head_too_large")
                await self._respond(writer, 400, b"request head too large\n")
                return
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self._reject("bad_request_line")
                await self._respond(writer, 400, b"bad request line\n")
                return
            method, target, _version = parts
            self.requests += 1
            if method not in ("GET", "HEAD"):
                self.rejections["method_not_allowed"] += 1
                await self._respond(writer, 405, b"read-only: GET and HEAD only\n", extra={"Allow": "GET, HEAD"})
                return
            status, ctype, body, extra = await self._route(target.split("?", 1)[0])
            if status == 404:
                self.rejections["not_found"] += 1
            await self._respond(writer, status, body, ctype=ctype, extra=extra, head_only=method == "HEAD")
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _reject(self, reason: str) -> None:
        self.bad_requests += 1
        self.rejections[reason] += 1

    def metrics_text(self) -> bytes:
        """This endpoint's own counters in the Prometheus text format (appended to ``/metrics``)."""
        lines = [
            "# HELP fabric_http_requests_total HTTP requests with a well-formed request line",
            "# TYPE fabric_http_requests_total counter",
            f"fabric_http_requests_total {float(self.requests)}",
            "# HELP fabric_http_rejected_total HTTP requests refused by the node's endpoint, by reason",
            "# TYPE fabric_http_rejected_total counter",
        ]
        for reason in ("bad_request_line", "head_too_large", "incomplete", "method_not_allowed", "not_found", "timeout"):
            lines.append(f'fabric_http_rejected_total{{reason="{reason}"}} {float(self.rejections.get(reason, 0))}')
        return ("\n".join(lines) + "\n").encode()

    async def _route(self, path: str) -> tuple[int, str, bytes, dict[str, str]]:
        source = self._source
        if source is None:
            return 503, "text/plain", b"starting\n", {}
        if path == "/metrics":
            return 200, METRICS_CONTENT_TYPE, source.metrics_text() + self.metrics_text(), {}
        if path == "/topology.json":
            body = json.dumps(await source.topology(), sort_keys=True).encode()
            return 200, "application/json", body, {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}
        if path in ("/", "/topology.html"):
            from .topology_view import render_html

            return 200, "text/html; charset=utf-8", render_html("/topology.json").encode(), {"Cache-Control": "no-store"}
        if path == "/healthz":
            running = source.running
            return (200 if running else 503), "text/plain", b"ok\n" if running else b"stopping\n", {}
        return 404, "text/plain", b"not found: try /metrics, /topology.json, /topology.html, /healthz\n", {}

    async def _respond(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        *,
        ctype: str = "text/plain; charset=utf-8",
        extra: Mapping[str, str] | None = None,
        head_only: bool = False,
    ) -> None:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}.get(status, "")
        headers = {"Content-Type": ctype, "Content-Length": str(len(body)), "Connection": "close", **(extra or {})}
        head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode("latin-1") + (b"" if head_only else body))
        await writer.drain()


__all__ = ["HttpEndpoint", "HttpSource", "METRICS_CONTENT_TYPE"]
