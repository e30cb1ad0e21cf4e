"""The live topology page in headless Chromium: a 5-node cluster of ``foundation-node start`` processes;
the page (written by ``foundation-node topology --format html``) shows every member alive, then shows a
stopped member down without a reload. Asserts on the DOM (read over the DevTools protocol); saves a
screenshot as evidence.

The DevTools client is a minimal RFC 6455 websocket client (text frames, client masking), enough for CDP.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.integration.test_cli_harness import NodeProcess, run_cli
from tests.support import require_tool

SCREENSHOT_DIR = Path(os.environ.get("FOUNDATION_SCREENSHOTS", tempfile.gettempdir()))


class DevTools:
    """One CDP websocket session (blocking, every read bounded)."""

    def __init__(self, ws_url: str, timeout: float = 10.0) -> None:
        url = urllib.parse.urlparse(ws_url)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (f"GET {url.path} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("devtools closed during the websocket handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"websocket upgrade refused: {head[:200]!r}")
        self.buffer = head.split(b"\r\n\r\n", 1)[1]
        self.ids = 0

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("devtools closed the websocket")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _recv_message(self) -> str:
        parts = []
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            data = self._read(n)
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise ConnectionError("devtools closed the websocket")
            if opcode in (0x9, 0xA):
                continue  # ping/pong: nothing to do for a short-lived session
            parts.append(data)
            if b0 & 0x80:
                return b"".join(parts).decode()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.ids += 1
        self._send_text(json.dumps({"id": self.ids, "method": method, "params": params}))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            msg = json.loads(self._recv_message())
            if msg.get("id") == self.ids:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg["result"])
        raise TimeoutError(f"no answer to {method}")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def close(self) -> None:
        self.sock.close()


@contextmanager
def chromium(url: str) -> Iterator[DevTools]:
    exe = require_tool("chromium")
    profile = tempfile.mkdtemp(prefix="ff-chromium-")
    proc = subprocess.Popen(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
         "--window-size=1100,900", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    devtools: DevTools | None = None
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None, "chromium exited at start"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        targets: list[dict[str, Any]] = []
        while not any(t.get("type") == "page" for t in targets):
            assert time.monotonic() < deadline, "no page target"
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(f"GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
                raw = b""
                while b"\r\n\r\n" not in raw:
                    raw += s.recv(65536)
                head, body = raw.split(b"\r\n\r\n", 1)
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += s.recv(65536)
            targets = json.loads(body or b"[]")
            if not any(t.get("type") == "page" for t in targets):
                time.sleep(0.05)
        page = next(t for t in targets if t.get("type") == "page")
        devtools = DevTools(f"ws://127.0.0.1:{port}/devtools/page/{page['id']}")
        yield devtools
    finally:
        if devtools is not None:
            devtools.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


MEMBERS_JS = "JSON.stringify([...document.querySelectorAll('#members li')].map(li => [li.dataset.name, li.dataset.state]))"
SVG_JS = "JSON.stringify([...document.querySelectorAll('#graph g.member')].map(g => [g.dataset.name, g.dataset.state]))"


def poll_dom(tools: DevTools, expression: str, want: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = json.loads(tools.evaluate(expression) or "null")
        if seen == want:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"DOM never showed {want}; last seen {seen}")


def test_live_page_shows_the_cluster_and_a_stopped_member_as_left(tmp_path: Path) -> None:
    """Also: when the node the page polls stops, the page fails over to another member's endpoint."""
    require_tool("chromium")
    names = ["n1", "n2", "n3", "n4", "n5"]
    nodes: list[NodeProcess] = []
    try:
        for name in names:  # static full mesh: each seeds every earlier node
            seeds = [arg for n in nodes for arg in ("--seed", n.seed)]
            nodes.append(NodeProcess("--name", name, "--http-port", "0", *seeds))
        code, _out, err = run_cli("members", "--node", nodes[0].seed, "--wait", "5", "--wait-timeout", "30")
        assert code == 0, err
        page = tmp_path / "topology.html"
        code, _out, err = run_cli("topology", "--node", nodes[0].seed, "--format", "html", "--poll-ms", "300", "-o", str(page))
        assert code == 0, err
        with chromium(page.as_uri()) as tools:
            everyone = [[n, "alive"] for n in names]
            poll_dom(tools, MEMBERS_JS, everyone)
            poll_dom(tools, SVG_JS, everyone)
            links = tools.evaluate("document.querySelectorAll('#graph line.link').length")
            assert links == 10 * 5  # 10 pairs x 5 channels
            loads = tools.evaluate("performance.getEntriesByType('navigation').length")
            marker = tools.evaluate("window.__marker = 'same-page'; window.__marker")

            victim = nodes[3]
            assert victim.stop() == 0  # SIGTERM: the node says BYE and exits 0
            after = [[n, "left" if n == "n4" else "alive"] for n in names]  # it said BYE: left, not down
            poll_dom(tools, MEMBERS_JS, after)
            poll_dom(tools, SVG_JS, after)
            # not reloaded: the marker set on this document survived
            assert tools.evaluate("window.__marker") == marker
            assert tools.evaluate("performance.getEntriesByType('navigation').length") == loads
            assert "4/5 members alive" in tools.evaluate("document.getElementById('status').textContent")
            shot = tools.call("Page.captureScreenshot", format="png")
            image = base64.b64decode(shot["data"])
            assert image[:8] == b"\x89PNG\r\n\x1a\n"
            (tmp_path / "topology.png").write_bytes(image)
            (SCREENSHOT_DIR / "foundation-topology.png").write_bytes(image)

            # the page's own source goes away: it switches to another member's endpoint, still no reload
            assert nodes[0].stop() == 0
            after = [[n, "left" if n in ("n1", "n4") else "alive"] for n in names]
            poll_dom(tools, MEMBERS_JS, after)
            assert tools.evaluate("window.__marker") == marker
            assert nodes[0].http not in tools.evaluate("document.getElementById('status').textContent")
    finally:
        for n in nodes:
            n.stop()
