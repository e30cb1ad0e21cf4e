"""A local Consul agent stand-in: a real HTTP server on 127.0.0.1 speaking the agent and health APIs.

Consul cannot be installed on these machines, so the ``consul`` strategy is tested against this server
through the plugin's real request and response code. What it implements, as documented at
developer.hashicorp.com/consul/api-docs (agent/service, agent/check, health, features/blocking):

* ``PUT /v1/agent/service/register`` (keys case-insensitive, CamelCase or snake_case, ``Check`` or
  ``Checks``, ``?replace-existing-checks``); check ids default to ``service:<id>`` (``:<n>`` suffixes
  when there are several); TTL checks start ``critical`` unless ``Status`` says otherwise;
* ``PUT /v1/agent/service/deregister/:id`` (404 ``Unknown service ID`` when unknown);
* ``PUT /v1/agent/check/pass|warn|fail/:id?note=`` and ``PUT /v1/agent/check/update/:id`` with a JSON
  ``{"Status", "Output"}`` (404 ``Unknown check ID``); a TTL check not updated within its TTL turns
  ``critical`` (with output ``TTL expired``); ``DeregisterCriticalServiceAfter`` removes the instance;
* ``GET /v1/health/service/:name`` with ``passing``, ``tag`` (repeatable, all must match), ``dc``
  (another one answers 500 ``No path to datacenter``), ``index`` + ``wait`` blocking semantics (the
  answer waits until the index exceeds ``index`` or ``wait`` (+ up to wait/16 jitter) elapses), the
  ``X-Consul-Index``, ``X-Consul-KnownLeader`` and ``X-Consul-LastContact`` headers;
* ``GET /v1/agent/services`` and ``/v1/agent/checks`` (for assertions);
* ACLs (when ``acl_tokens`` is given): ``X-Consul-Token`` (or ``?token=``) naming an unknown token ->
  403 ``ACL not found``; a write without ``write`` rights -> 403 ``Permission denied``; an anonymous
  read is answered with the results filtered out (``X-Consul-Results-Filtered-By-ACLs: true``), as
  Consul does with ``default_policy = deny``.

Test controls: :meth:`FakeConsul.restore_snapshot` lowers the index and wakes every blocking query (what
a snapshot restore does to a real server: the state store is abandoned), :meth:`FakeConsul.inject`
queues faults for the next health answers (``invalid_json``, ``http500``, ``slow:<seconds>``,
``garbage_index``), :meth:`FakeConsul.expire_check` lapses a TTL at once.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_DURATION = re.compile(r"([\d.]+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration ("10s", "1m30s", "250ms") in seconds; a bare number is seconds (Consul accepts it)."""
    text = text.strip()
    if re.fullmatch(r"[\d.]+", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"bad duration {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


class _QuietServer(ThreadingHTTPServer):
    """Clients that gave up (timeouts in fault tests) close their end: not worth a traceback.

    With a TLS context, accepted sockets are wrapped; the handshake runs in the handler thread.
    """

    tls: ssl.SSLContext | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Handler threads still serving a connection, with its socket; close() ends them (no thread
        #: outlives a test; clients keep idle connections open for reuse, as a real agent allows).
        self.active: dict[threading.Thread, Any] = {}

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        self.active[threading.current_thread()] = request
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.active.pop(threading.current_thread(), None)

    def close_connections(self) -> None:
        """Shut every open connection down (as an agent that stops does) and wait for its thread."""
        for thread, sock in list(self.active.items()):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            thread.join(timeout=5)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError | TimeoutError):
            super().handle_error(request, client_address)


def _norm(key: str) -> str:
    return key.replace("_", "").lower()


def _get(obj: dict[str, Any], *names: str, default: Any = None) -> Any:
    """Case-insensitive, snake/Camel-insensitive lookup (Consul's decoder accepts both)."""
    wanted = {_norm(n) for n in names}
    for key, value in obj.items():
        if _norm(key) in wanted:
            return value
    return default


class _Check:
    def __init__(self, check_id: str, name: str, service_id: str, service_name: str, service_tags: list[str],
                 ttl: float | None, status: str, notes: str, deregister_after: float | None, index: int) -> None:
        self.check_id = check_id
        self.name = name
        self.service_id = service_id
        self.service_name = service_name
        self.service_tags = service_tags
        self.ttl = ttl
        self.status = status
        self.notes = notes
        self.output = ""
        self.deregister_after = deregister_after
        self.deadline = time.monotonic() + ttl if ttl else None
        self.critical_since: float | None = time.monotonic() if status == "critical" else None
        self.create_index = index
        self.modify_index = index

    def to_json(self, node: str) -> dict[str, Any]:
        return {
            "Node": node, "CheckID": self.check_id, "Name": self.name, "Status": self.status,
            "Notes": self.notes, "Output": self.output, "ServiceID": self.service_id,
            "ServiceName": self.service_name, "ServiceTags": list(self.service_tags), "Type": "ttl" if self.ttl else "",
            "Definition": {}, "CreateIndex": self.create_index, "ModifyIndex": self.modify_index,
        }


class FakeConsul:
    """One agent (node ``fake-agent`` in datacenter ``dc``) plus the catalog it serves. Thread-safe."""

    def __init__(self, *, datacenter: str = "dc1", acl_tokens: dict[str, str] | None = None,
                 node_address: str = "127.0.0.1", port: int = 0, pki: dict[str, str] | None = None,
                 require_client_cert: bool = False) -> None:
        """``acl_tokens``: token -> ``"write"`` or ``"read"``; None disables ACLs. ``port`` 0: ephemeral
        (pass an earlier server's port to play an agent restart: the new one knows no registrations).
        ``pki`` (from ``k8s_server.make_pki``) serves HTTPS; ``require_client_cert`` asks for a client
        certificate signed by the same CA (Consul's ``verify_incoming``)."""
        self.datacenter = datacenter
        self.acl_tokens = acl_tokens
        self.node_name = "fake-agent"
        self.node_id = str(uuid.uuid4())
        self.node_address = node_address
        self.index = 10
        self.services: dict[str, dict[str, Any]] = {}
        self.checks: dict[str, _Check] = {}
        self.requests: list[tuple[str, str]] = []
        self.faults: list[str] = []
        self.fault_filter = ""
        self._cond = threading.Condition()
        self._epoch = 0  # bumped by restore_snapshot: wakes and answers every blocking query
        self._closing = False
        self._server = _QuietServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        if pki is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(pki["cert"], pki["key"])
            if require_client_cert:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(pki["ca"])
            self._server.tls = context
        self.port = int(self._server.server_address[1])
        self.url = f"{'https' if pki else 'http'}://127.0.0.1:{self.port}"
        self._threads = [
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True),
            threading.Thread(target=self._reaper, daemon=True),
        ]

    # -- life cycle ------------------------------------------------------------------------------------

    def start(self) -> FakeConsul:
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        if self._threads[0].is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        for thread in self._threads:
            thread.join(timeout=5)

    # -- test controls ---------------------------------------------------------------------------------

    def _bump(self) -> int:
        self.index += 1
        self._cond.notify_all()
        return self.index

    def restore_snapshot(self, index: int = 2) -> None:
        """Lower the index to ``index`` and wake every blocking query, as a snapshot restore does."""
        with self._cond:
            self.index = index
            self._epoch += 1
            self._cond.notify_all()

    def inject(self, *faults: str, only: str = "") -> None:
        """Queue faults for the next health answers, one per answer, in order; with ``only``, for the
        answers to requests whose path contains it (aim at one client among several)."""
        with self._cond:
            self.faults.extend(faults)
            self.fault_filter = only

    def expire_check(self, check_id: str) -> None:
        """Lapse a TTL check now (as if its TTL had run out)."""
        with self._cond:
            check = self.checks[check_id]
            check.deadline = time.monotonic()
            self._cond.notify_all()

    def check_status(self, check_id: str) -> str | None:
        with self._cond:
            check = self.checks.get(check_id)
            return None if check is None else check.status

    def service_ids(self) -> set[str]:
        with self._cond:
            return set(self.services)

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        """Wait (bounded) until ``predicate(self)`` holds; state changes wake the wait."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("fake consul: condition not reached")
                self._cond.wait(remaining)

    # -- state -----------------------------------------------------------------------------------------

    def _reaper(self) -> None:
        """Turn lapsed TTL checks critical; remove instances critical for DeregisterCriticalServiceAfter."""
        with self._cond:
            while not self._closing:
                now = time.monotonic()
                wake = now + 1.0
                for check in list(self.checks.values()):
                    if check.deadline is not None and check.status != "critical":
                        if check.deadline <= now:
                            check.status, check.output = "critical", "TTL expired"
                            check.critical_since = now
                            check.modify_index = self._bump()
                        else:
                            wake = min(wake, check.deadline)
                    if check.status == "critical" and check.deregister_after is not None:
                        assert check.critical_since is not None
                        due = check.critical_since + check.deregister_after
                        if due <= now and check.service_id in self.services:
                            self._remove_service(check.service_id)
                        else:
                            wake = min(wake, due)
                self._cond.wait(max(0.0, wake - time.monotonic()))

    def _remove_service(self, service_id: str) -> None:
        self.services.pop(service_id, None)
        for check_id in [c for c, chk in self.checks.items() if chk.service_id == service_id]:
            del self.checks[check_id]
        self._bump()

    def register(self, body: dict[str, Any], replace_checks: bool) -> None:
        name = _get(body, "Name")
        if not isinstance(name, str) or not name:
            raise ValueError("Missing service name")
        service_id = _get(body, "ID", "ServiceID") or name
        tags = list(_get(body, "Tags", default=[]) or [])
        meta = dict(_get(body, "Meta", default={}) or {})
        for key, value in meta.items():
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", key) or len(str(value)) > 512:
                raise ValueError(f"Invalid Service Meta: key {key!r}")
        port = int(_get(body, "Port", default=0) or 0)
        checks = list(_get(body, "Checks", default=None) or [])
        single = _get(body, "Check")
        if single:
            checks.insert(0, single)
        with self._cond:
            index = self._bump()
            existing = self.services.get(service_id)
            self.services[service_id] = {
                "ID": service_id, "Service": name, "Tags": tags, "Address": _get(body, "Address", default="") or "",
                "Meta": meta, "Port": port, "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": False,
                "CreateIndex": existing["CreateIndex"] if existing else index, "ModifyIndex": index,
            }
            if replace_checks:
                for check_id in [c for c, chk in self.checks.items() if chk.service_id == service_id]:
                    del self.checks[check_id]
            for i, definition in enumerate(checks):
                check_id = _get(definition, "CheckID", "ID") or (
                    f"service:{service_id}" + (f":{i + 1}" if len(checks) > 1 else ""))
                ttl_text = _get(definition, "TTL")
                ttl = parse_duration(ttl_text) if ttl_text else None
                after_text = _get(definition, "DeregisterCriticalServiceAfter")
                after = max(parse_duration(after_text), 0.0) if after_text else None
                self.checks[check_id] = _Check(
                    check_id, _get(definition, "Name") or f"Service '{name}' check", service_id, name, tags,
                    ttl, _get(definition, "Status") or "critical", _get(definition, "Notes") or "", after, index,
                )

    def update_check(self, check_id: str, status: str, output: str) -> bool:
        with self._cond:
            check = self.checks.get(check_id)
            if check is None:
                return False
            if check.ttl:
                check.deadline = time.monotonic() + check.ttl
            changed = check.status != status or check.output != output
            check.status, check.output = status, output
            check.critical_since = time.monotonic() if status == "critical" else None
            if changed:  # Consul only raises the index when something changed
                check.modify_index = self._bump()
            self._cond.notify_all()  # the reaper recomputes its wake-up
            return True

    def deregister(self, service_id: str) -> bool:
        with self._cond:
            if service_id not in self.services:
                return False
            self._remove_service(service_id)
            return True

    def _node_json(self) -> dict[str, Any]:
        return {
            "ID": self.node_id, "Node": self.node_name, "Address": self.node_address, "Datacenter": self.datacenter,
            "TaggedAddresses": {"lan": self.node_address, "wan": self.node_address}, "Meta": {},
            "CreateIndex": 1, "ModifyIndex": 1,
        }

    def health_entries(self, name: str, passing: bool, tags: list[str]) -> list[dict[str, Any]]:
        serf = {
            "Node": self.node_name, "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing",
            "Notes": "", "Output": "Agent alive and reachable", "ServiceID": "", "ServiceName": "",
            "ServiceTags": [], "Type": "", "CreateIndex": 1, "ModifyIndex": 1,
        }
        entries = []
        for service in sorted(self.services.values(), key=lambda s: str(s["ID"])):
            if service["Service"] != name or not all(t in service["Tags"] for t in tags):
                continue
            checks = [serf] + [c.to_json(self.node_name) for c in self.checks.values() if c.service_id == service["ID"]]
            if passing and any(c["Status"] != "passing" for c in checks):
                continue
            entries.append({"Node": self._node_json(), "Service": json.loads(json.dumps(service)), "Checks": checks})
        return entries

    # -- HTTP ------------------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                if isinstance(self.request, ssl.SSLSocket):
                    self.request.settimeout(10)
                    self.request.do_handshake()
                super().setup()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
                return

            def _send(self, code: int, body: Any, headers: dict[str, str] | None = None, raw: bool = False) -> None:
                data = body if raw else json.dumps(body).encode()
                if isinstance(data, str):
                    data = data.encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json" if code < 400 else "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _error(self, code: int, text: str) -> None:
                self._send(code, text.encode(), raw=True)

            def _token_rights(self, query: dict[str, list[str]]) -> str | None:
                """'write', 'read', 'anonymous' or None (unknown token: 403 sent)."""
                if fake.acl_tokens is None:
                    return "write"
                token = self.headers.get("X-Consul-Token") or (query.get("token") or [""])[0]
                if not token:
                    return "anonymous"
                rights = fake.acl_tokens.get(token)
                if rights is None:
                    self._error(403, "ACL not found")
                return rights

            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                return json.loads(raw) if raw.strip() else {}

            def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
                fake.requests.append(("PUT", self.path))
                rights = self._token_rights(query)
                if rights is None:
                    return
                if rights != "write":
                    self._error(403, "Permission denied: token lacks permission 'service:write'")
                    return
                path = url.path
                try:
                    if path == "/v1/agent/service/register":
                        fake.register(self._body(), "replace-existing-checks" in query)
                        self._send(200, b"", raw=True)
                    elif path.startswith("/v1/agent/service/deregister/"):
                        service_id = urllib.parse.unquote(path.rsplit("/", 1)[1])
                        if fake.deregister(service_id):
                            self._send(200, b"", raw=True)
                        else:
                            self._error(404, f'Unknown service ID "{service_id}". Ensure that the service ID '
                                             "is passed, not the service name.")
                    elif m := re.fullmatch(r"/v1/agent/check/(pass|warn|fail|update)/(.+)", path):
                        action, check_id = m.group(1), urllib.parse.unquote(m.group(2))
                        if action == "update":
                            body = self._body()
                            status = _get(body, "Status") or ""
                            if status not in ("passing", "warning", "critical"):
                                self._error(400, "Invalid check status")
                                return
                            output = _get(body, "Output") or ""
                        else:
                            status = {"pass": "passing", "warn": "warning", "fail": "critical"}[action]
                            output = (query.get("note") or [""])[0]
                        if fake.update_check(check_id, status, output):
                            self._send(200, b"", raw=True)
                        else:
                            self._error(404, f'Unknown check ID "{check_id}". Ensure that the check ID is passed, '
                                             "not the check name.")
                    else:
                        self._error(404, "")
                except (ValueError, TypeError, json.JSONDecodeError) as exc:
                    self._error(400, f"Request decode failed: {exc}")

            def do_GET(self) -> None:  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
                with fake._cond:
                    # A restore after this point wakes this query even if it has not started waiting.
                    epoch = fake._epoch
                    fake.requests.append(("GET", self.path))
                rights = self._token_rights(query)
                if rights is None:
                    return
                if url.path in ("/v1/agent/services", "/v1/agent/checks"):
                    with fake._cond:
                        if url.path.endswith("services"):
                            body: Any = {k: dict(v) for k, v in fake.services.items()}
                        else:
                            body = {k: c.to_json(fake.node_name) for k, c in fake.checks.items()}
                    self._send(200, body)
                    return
                m = re.fullmatch(r"/v1/health/service/([^/]+)", url.path)
                if not m:
                    self._error(404, "")
                    return
                dc = (query.get("dc") or [fake.datacenter])[0]
                if dc != fake.datacenter:
                    self._error(500, "No path to datacenter")
                    return
                try:
                    index = int((query.get("index") or ["0"])[0])
                    wait = min(parse_duration((query.get("wait") or ["5m"])[0]), 600.0)
                except ValueError as exc:
                    self._error(400, f"Invalid wait/index: {exc}")
                    return
                name = urllib.parse.unquote(m.group(1))
                passing = "passing" in query and (query["passing"][0].lower() not in ("0", "false"))
                tags = query.get("tag", [])
                with fake._cond:
                    targeted = fake.fault_filter in self.path
                    fault = fake.faults.pop(0) if fake.faults and targeted else None
                    if index > 0:
                        # Blocking query: answer once the index exceeds ours, on a snapshot restore, or
                        # after wait + up to wait/16 of jitter (Consul's spreading of timed-out queries).
                        deadline = time.monotonic() + wait + random.uniform(0, wait / 16)
                        while fake.index <= index and fake._epoch == epoch and not fake._closing:
                            remaining = deadline - time.monotonic()
                            if remaining <= 0:
                                break
                            fake._cond.wait(remaining)
                    entries = fake.health_entries(name, passing, tags) if rights != "anonymous" else []
                    current = fake.index
                headers = {"X-Consul-Index": str(current), "X-Consul-KnownLeader": "true",
                           "X-Consul-LastContact": "0", "X-Consul-Effective-Consistency": "leader"}
                if rights == "anonymous":
                    headers["X-Consul-Results-Filtered-By-ACLs"] = "true"
                if fault == "invalid_json":
                    self._send(200, b'[{"Node": {"Node": "x"', headers, raw=True)
                elif fault == "http500":
                    self._error(500, "rpc error making call: EOF")
                elif fault == "garbage_index":
                    self._send(200, entries, {**headers, "X-Consul-Index": "not-a-number"})
                elif fault is not None and fault.startswith("slow:"):
                    with fake._cond:  # a stalled agent; the client must give up on its own (close wakes it)
                        fake._cond.wait_for(lambda: fake._closing, timeout=float(fault[5:]))
                    self._send(200, entries, headers)
                else:
                    self._send(200, entries, headers)

        return Handler


@contextmanager
def running_consul(**kw: Any) -> Iterator[FakeConsul]:
    """Start a :class:`FakeConsul` on an ephemeral port; close it on exit."""
    server = FakeConsul(**kw).start()
    try:
        yield server
    finally:
        server.close()
