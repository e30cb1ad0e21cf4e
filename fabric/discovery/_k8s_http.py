"""A small asyncio HTTP/1.1 client on the standard library, for the ``kubernetes`` and ``consul`` strategies.

Theory of operation
-------------------
One request per connection (``Connection: close``), opened with :func:`asyncio.open_connection` (plain
TCP or TLS through an :class:`ssl.SSLContext`), so nothing ever blocks the loop, every step is
cancellable, and there is no connection pool to go stale. :func:`open_stream` sends the request and
reads the status line and headers; the body is then read whole (:meth:`HttpStream.read_body`) or as
newline-delimited records while it arrives (:meth:`HttpStream.lines`, for Kubernetes watch streams). The
body framing follows RFC 9112 section 6: ``Transfer-Encoding: chunked`` (chunk extensions and trailers
ignored), else ``Content-Length``, else until the server closes.

Every read has a deadline (``idle_timeout``, with :func:`asyncio.timeout`: Python 3.11's ``wait_for``
can swallow a cancellation that lands as the inner call completes, which would make a plugin's stop()
wait forever on its own task): a server that stops sending mid-answer costs at most that
long. Sizes are bounded (``max_body``, ``max_line``) so a broken or hostile server cannot exhaust
memory. Protocol violations raise :class:`HttpProtocolError` (the server's fault); network trouble raises
:class:`OSError`/:class:`TimeoutError` as asyncio does.

Why not a third-party client: the two strategies need GET/PUT, TLS with a private CA and client certs,
and one streaming GET; the standard library does all of it in ~200 lines with no new dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping

__all__ = ["Headers", "HttpError", "HttpProtocolError", "HttpResponse", "HttpStream", "open_stream", "request"]

_MAX_HEADER_BYTES = 64 * 1024


class HttpError(Exception):
    """Root of this module's errors."""


class HttpProtocolError(HttpError):
    """The server broke HTTP/1.1 framing (bad status line, bad chunk size, body too large)."""


class Headers(Mapping[str, str]):
    """Response headers, looked up case-insensitively (``headers["x-consul-index"]``). Last value wins."""

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        """Copy ``items`` (names folded to lower case)."""
        self._items: dict[str, tuple[str, str]] = {}
        for key, value in (items or {}).items():
            self.add(key, value)

    def add(self, name: str, value: str) -> None:
        """Set ``name`` to ``value`` (replacing an earlier value)."""
        self._items[name.lower()] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class HttpResponse:
    """A whole response: ``status`` (int), ``reason``, ``headers`` (:class:`Headers`), ``body`` (bytes)."""

    __slots__ = ("status", "reason", "headers", "body")

    def __init__(self, status: int, reason: str, headers: Headers, body: bytes) -> None:
        """Plain value holder."""
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def text(self) -> str:
        """The body as UTF-8 text (undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")


class HttpStream:
    """A response whose status and headers are read and whose body is still on the wire.

    Use it on the loop that opened it; :meth:`close` (idempotent) drops the connection.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter | None,
        status: int,
        reason: str,
        headers: Headers,
        idle_timeout: float,
    ) -> None:
        """Built by :func:`open_stream` (or by tests around a fed :class:`asyncio.StreamReader`)."""
        self.status = status
        self.reason = reason
        self.headers = headers
        self._reader = reader
        self._writer = writer
        self._idle = idle_timeout
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        if length is not None and not self._chunked:
            if not length.strip().isdigit():
                raise HttpProtocolError(f"bad Content-Length {length!r}")
            self._remaining: int | None = int(length)
        else:
            self._remaining = None
        self._done = False

    async def _read(self, awaitable: Awaitable[bytes]) -> bytes:
        async with asyncio.timeout(self._idle):
            return await awaitable

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield body bytes as they arrive (chunk payloads for chunked bodies), then stop."""
        if self._done:
            return
        reader = self._reader
        if self._chunked:
            while True:
                line = await self._read(reader.readline())
                if not line.endswith(b"\n"):
                    raise HttpProtocolError("connection closed inside a chunked body")
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise HttpProtocolError(f"bad chunk size {size_text[:20]!r}") from None
                if size < 0:
                    raise HttpProtocolError("negative chunk size")
                if size == 0:
                    # Trailer section, ended by an empty line (or EOF from a lax server).
                    while True:
                        trailer = await self._read(reader.readline())
                        if trailer in (b"\r\n", b"\n", b""):
                            break
                    self._done = True
                    return
                try:
                    data = await self._read(reader.readexactly(size))
                    crlf = await self._read(reader.readline())
                except asyncio.IncompleteReadError:
                    raise HttpProtocolError("connection closed inside a chunk") from None
                if crlf not in (b"\r\n", b"\n"):
                    raise HttpProtocolError("chunk not followed by CRLF")
                yield data
        elif self._remaining is not None:
            while self._remaining > 0:
                data = await self._read(reader.read(min(self._remaining, 65536)))
                if not data:
                    raise HttpProtocolError(f"connection closed with {self._remaining} body bytes missing")
                self._remaining -= len(data)
                yield data
            self._done = True
        else:
            while True:
                data = await self._read(reader.read(65536))
                if not data:
                    self._done = True
                    return
                yield data

    async def read_body(self, max_body: int = 16 * 1024 * 1024) -> bytes:
        """The whole body; raises HttpProtocolError beyond ``max_body`` bytes."""
        parts: list[bytes] = []
        total = 0
        async for data in self.chunks():
            total += len(data)
            if total > max_body:
                raise HttpProtocolError(f"body larger than {max_body} bytes")
            parts.append(data)
        return b"".join(parts)

    async def lines(self, max_line: int = 16 * 1024 * 1024) -> AsyncIterator[bytes]:
        """Yield each newline-terminated record of the body (without the newline; blank ones skipped).

        A last record without a newline is yielded at the end. Raises HttpProtocolError for a record
        longer than ``max_line`` bytes.
        """
        buffer = b""
        async for data in self.chunks():
            buffer += data
            while True:
                line, sep, rest = buffer.partition(b"\n")
                if not sep:
                    break
                buffer = rest
                if line.strip():
                    yield line
            if len(buffer) > max_line:
                raise HttpProtocolError(f"record longer than {max_line} bytes")
        if buffer.strip():
            yield buffer

    async def close(self) -> None:
        """Close the connection (idempotent, never raises)."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()


def _split_url(url: str) -> tuple[str, str, int, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return parts.scheme, parts.hostname, port, target


async def open_stream(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    ssl_context: ssl.SSLContext | None = None,
    connect_timeout: float = 10.0,
    idle_timeout: float = 10.0,
) -> HttpStream:
    """Send one request and return the response with its body unread. Close it when done.

    ``connect_timeout`` bounds connecting and receiving the status line and headers; ``idle_timeout``
    bounds each later read of the body (a watch stream may rightly stay silent for long).

    ``ssl_context`` is required for https URLs (the caller decides on CA, verification and client
    certificates). Raises OSError/TimeoutError for network trouble, HttpProtocolError for a response
    that is not HTTP/1.x, ValueError for a bad URL.
    """
    scheme, host, port, target = _split_url(url)
    if scheme == "https" and ssl_context is None:
        raise ValueError("https URL needs an ssl_context")
    async with asyncio.timeout(connect_timeout):
        reader, writer = await asyncio.open_connection(
            host,
            port,
            ssl=ssl_context if scheme == "https" else None,
            server_hostname=host if scheme == "https" else None,
            limit=_MAX_HEADER_BYTES,
        )
    try:
        host_header = f"[{host}]" if ":" in host else host
        default_port = 443 if scheme == "https" else 80
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}" + (f":{port}" if port != default_port else "")]
        merged = {"Accept": "application/json", "User-Agent": "foundation-fabric", "Connection": "close"}
        merged.update(headers or {})
        if body or method in ("PUT", "POST"):
            merged["Content-Length"] = str(len(body))
        lines += [f"{k}: {v}" for k, v in merged.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        async with asyncio.timeout(connect_timeout):  # a server answers headers at once, even for watches
            await writer.drain()
            status_line = await reader.readline()
        parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise HttpProtocolError(f"bad status line {status_line[:80]!r}")
        response_headers = Headers()
        total = 0
        while True:
            async with asyncio.timeout(connect_timeout):
                line = await reader.readline()
            total += len(line)
            if total > _MAX_HEADER_BYTES:
                raise HttpProtocolError("response headers too large")
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise HttpProtocolError("connection closed inside the headers")
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise HttpProtocolError(f"bad header line {line[:80]!r}")
            response_headers.add(name.strip(), value.strip())
        return HttpStream(reader, writer, int(parts[1]), parts[2] if len(parts) > 2 else "", response_headers, idle_timeout)
    except BaseException:  # includes ValueError from readline() when a header line exceeds the limit
        writer.close()
        raise


async def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
    max_body: int = 16 * 1024 * 1024,
) -> HttpResponse:
    """Send one request and read the whole response, all within ``timeout`` seconds.

    Raises as :func:`open_stream`, plus TimeoutError when the whole exchange exceeds ``timeout``.
    """

    async def exchange() -> HttpResponse:
        stream = await open_stream(
            method, url, headers=headers, body=body, ssl_context=ssl_context,
            connect_timeout=timeout, idle_timeout=timeout,
        )
        try:
            data = await stream.read_body(max_body)
        finally:
            await stream.close()
        return HttpResponse(stream.status, stream.reason, stream.headers, data)

    async with asyncio.timeout(timeout):
        return await exchange()
