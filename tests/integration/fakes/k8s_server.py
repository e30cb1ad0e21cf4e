"""A Kubernetes API server stand-in for EndpointSlices: HTTPS with a test CA, bearer tokens, list and watch.

Kubernetes cannot run on these machines, so the ``kubernetes`` strategy is tested against this server,
which follows the API conventions (kubernetes.io/docs/reference/using-api/api-concepts):

* TLS with a server certificate for 127.0.0.1 signed by a CA made at test time (:func:`make_pki`,
  ``openssl`` CLI); clients verify it with the CA bundle, as pods do with ``ca.crt``;
* ``Authorization: Bearer <token>`` checked against :attr:`FakeKubernetes.tokens` (401 Status
  otherwise), namespaces other than :attr:`FakeKubernetes.namespace` -> 403 Forbidden (RBAC);
* ``GET /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices?labelSelector=...``: an
  ``EndpointSliceList`` with ``metadata.resourceVersion``;
* ``...&watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=T``: a chunked stream of JSON
  lines, one event per chunk: every change after RV, then new changes as they happen, ``BOOKMARK`` events
  (only ``metadata.resourceVersion``) when asked to, the stream ending after ``timeoutSeconds``. A RV older
  than the compaction point gets ``200`` + an ``ERROR`` event with a ``410`` Status ("too old resource
  version"), as the real server does, or, with ``gone_as_http=True``, an HTTP 410 answer.

Test controls: :meth:`put_slice` / :meth:`delete_slice` (each a new resourceVersion), :meth:`compact`,
:meth:`expire_watches` (sends the 410 ERROR event into open watches), :meth:`bookmark`, :meth:`inject`
(``invalid_json``, ``http500``, ``slow:<s>``, ``unauthorized`` for the next requests).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

API = "/apis/discovery.k8s.io/v1/namespaces/"


def make_pki(directory: str, openssl: str = "openssl") -> dict[str, str]:
    """A CA and a server certificate for 127.0.0.1/localhost, made with the openssl CLI in ``directory``.

    Returns paths: ``ca`` (bundle), ``cert``, ``key``. EC P-256 keys (fast), valid one day.
    """
    d = Path(directory)
    ext = d / "server.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"  # the tests reuse it as a client certificate

        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *args: subprocess.run([openssl, *args], check=True, capture_output=True, timeout=30)  # noqa: E731
    run("req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"), "-days", "1",
        "-subj", "/CN=foundation-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"), "-subj", "/CN=kubernetes")
    run("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
        "-CAcreateserial", "-out", str(d / "server.crt"), "-days", "1", "-extfile", str(ext))
    return {"ca": str(d / "ca.crt"), "cert": str(d / "server.crt"), "key": str(d / "server.key")}


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def _matches(labels: Mapping[str, str], selector: str) -> bool:
    for raw in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in raw:
            key, value = raw.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in raw:
            key, value = raw.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif raw.startswith("!"):
            if raw[1:] in labels:
                return False
        elif raw not in labels:
            return False
    return True


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext) -> None:
        super().__init__(address, handler)
        self.context = context

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        # Handshake in the handler thread, so one slow client cannot stall the accept loop.
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError | TimeoutError):
            super().handle_error(request, client_address)


class FakeKubernetes:
    """EndpointSlices of one namespace, served over HTTPS on 127.0.0.1:<ephemeral>. Thread-safe."""

    def __init__(self, pki: Mapping[str, str], *, namespace: str = "default", tokens: Sequence[str] = ("token-1",),
                 gone_as_http: bool = False) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki["cert"], pki["key"])
        self.namespace = namespace
        self.tokens = set(tokens)
        self.gone_as_http = gone_as_http
        self.resource_version = 1000
        self.compacted = 0  # watches from a resourceVersion below this get 410
        self.slices: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[int, str, dict[str, Any]]] = []
        self.requests: list[str] = []
        self.faults: list[str] = []
        self.open_watches = 0
        self._cond = threading.Condition()
        self._expire_epoch = 0
        self._bookmark_epoch = 0
        self._closing = False
        self._server = _TLSServer(("127.0.0.1", 0), self._handler_class(), context)
        self.port = int(self._server.server_address[1])
        self.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> FakeKubernetes:
        self._thread.start()
        return self

    def close(self) -> None:
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- state changes -----------------------------------------------------------------------------------

    def _record(self, kind: str, obj: dict[str, Any]) -> None:
        self.resource_version += 1
        obj["metadata"]["resourceVersion"] = str(self.resource_version)
        self.events.append((self.resource_version, kind, json.loads(json.dumps(obj))))
        self._cond.notify_all()

    def put_slice(self, name: str, endpoints: Sequence[Mapping[str, Any]], ports: Mapping[str, int], *,
                  service: str = "foundation", labels: Mapping[str, str] | None = None,
                  address_type: str = "IPv4") -> None:
        """Create or replace a slice. ``endpoints``: dicts with ``ip`` and optional ``ready``,
        ``serving``, ``terminating``, ``pod``, ``node``."""
        with self._cond:
            existing = self.slices.get(name)
            obj = {
                "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                "metadata": {
                    "name": name, "namespace": self.namespace,
                    "uid": existing["metadata"]["uid"] if existing else str(uuid.uuid4()),
                    "labels": {"kubernetes.io/service-name": service,
                               "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                               **(labels or {})},
                    "generation": 1,
                },
                "addressType": address_type,
                "endpoints": [
                    {
                        "addresses": [e["ip"]],
                        "conditions": {k: e[k] for k in ("ready", "serving", "terminating") if k in e},
                        **({"targetRef": {"kind": "Pod", "namespace": self.namespace, "name": e["pod"]}}
                           if "pod" in e else {}),
                        **({"nodeName": e["node"]} if "node" in e else {}),
                    }
                    for e in endpoints
                ],
                "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports.items()],
            }
            self.slices[name] = obj
            self._record("MODIFIED" if existing else "ADDED", obj)

    def delete_slice(self, name: str) -> None:
        with self._cond:
            obj = self.slices.pop(name)
            self._record("DELETED", obj)

    def compact(self) -> None:
        """Forget the event history: a watch from any earlier resourceVersion gets 410 Gone."""
        with self._cond:
            self.compacted = self.resource_version
            self.events.clear()

    def expire_watches(self) -> None:
        """Compact and send every open watch an ERROR event with a 410 Status (then end it)."""
        with self._cond:
            self.compacted = self.resource_version
            self.events.clear()
            self._expire_epoch += 1
            self._cond.notify_all()

    def bookmark(self) -> None:
        """Send a BOOKMARK event (the current resourceVersion) into every open watch that allows them."""
        with self._cond:
            self._bookmark_epoch += 1
            self._cond.notify_all()

    def inject(self, *faults: str) -> None:
        with self._cond:
            self.faults.extend(faults)

    # -- HTTP ----------------------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                self.request.settimeout(10)
                self.request.do_handshake()
                super().setup()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def _json(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def do_GET(self) -> None:  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
                with fake._cond:
                    fake.requests.append(self.path)
                    fault = fake.faults.pop(0) if fake.faults else None
                auth = self.headers.get("Authorization", "")
                if fault == "unauthorized" or not auth.startswith("Bearer ") or auth[7:] not in fake.tokens:
                    self._json(401, _status(401, "Unauthorized", "Unauthorized"))
                    return
                if not url.path.startswith(API) or not url.path.endswith("/endpointslices"):
                    self._json(404, _status(404, "NotFound", "the server could not find the requested resource"))
                    return
                namespace = url.path[len(API):].split("/", 1)[0]
                if namespace != fake.namespace:
                    self._json(403, _status(403, "Forbidden", f'endpointslices.discovery.k8s.io is forbidden: '
                                                             f'cannot list resource in namespace "{namespace}"'))
                    return
                if fault == "http500":
                    self._json(500, _status(500, "InternalError", "etcdserver: request timed out"))
                    return
                if fault is not None and fault.startswith("slow:"):
                    time.sleep(float(fault[5:]))  # a stalled API server; the client gives up on its own
                selector = query.get("labelSelector", "")
                if query.get("watch") in ("1", "true"):
                    self._watch(selector, query, fault)
                    return
                with fake._cond:
                    items = [s for _, s in sorted(fake.slices.items()) if _matches(s["metadata"]["labels"], selector)]
                    body = {"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                            "metadata": {"resourceVersion": str(fake.resource_version)}, "items": items}
                if fault == "invalid_json":
                    data = b'{"kind": "EndpointSliceList", "items": [{'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self._json(200, body)

            def _watch(self, selector: str, query: Mapping[str, str], fault: str | None) -> None:
                try:
                    since = int(query.get("resourceVersion") or "0")
                except ValueError:
                    self._json(400, _status(400, "BadRequest", "invalid resourceVersion"))
                    return
                timeout = float(query.get("timeoutSeconds") or "1800")
                bookmarks = query.get("allowWatchBookmarks") == "true"
                with fake._cond:
                    gone = since < fake.compacted
                if gone and fake.gone_as_http:
                    self._json(410, _status(410, "Expired", f"too old resource version: {since} ({fake.compacted})"))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if fault == "invalid_json":
                    self._chunk(b'{"type": "ADDED", "object": {"metadata": \n')
                if gone:
                    event = {"type": "ERROR", "object": _status(410, "Expired",
                                                                f"too old resource version: {since} ({fake.compacted})")}
                    self._chunk(json.dumps(event).encode() + b"\n")
                    self._chunk(b"")
                    return
                deadline = time.monotonic() + timeout
                with fake._cond:
                    fake.open_watches += 1
                    expire_epoch, bookmark_epoch = fake._expire_epoch, fake._bookmark_epoch
                try:
                    sent = since
                    while True:
                        with fake._cond:
                            pending = [(rv, t, o) for rv, t, o in fake.events
                                       if rv > sent and _matches(o["metadata"]["labels"], selector)]
                            expired = fake._expire_epoch != expire_epoch
                            bookmark = bookmarks and fake._bookmark_epoch != bookmark_epoch
                            bookmark_epoch = fake._bookmark_epoch
                            current = fake.resource_version
                            if not pending and not expired and not bookmark:
                                remaining = deadline - time.monotonic()
                                if remaining <= 0 or fake._closing:
                                    break
                                fake._cond.wait(min(remaining, 1.0))
                                continue
                        for rv, kind, obj in pending:
                            self._chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                            sent = rv
                        if expired:
                            event = {"type": "ERROR", "object": _status(410, "Expired", "too old resource version")}
                            self._chunk(json.dumps(event).encode() + b"\n")
                            break
                        if bookmark:
                            event = {"type": "BOOKMARK", "object": {
                                "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                                "metadata": {"resourceVersion": str(current),
                                             "annotations": {"k8s.io/initial-events-end": "false"}}}}
                            self._chunk(json.dumps(event).encode() + b"\n")
                            sent = max(sent, current)
                    self._chunk(b"")
                except (ConnectionError, ssl.SSLError, TimeoutError, OSError):
                    pass  # the client went away
                finally:
                    with fake._cond:
                        fake.open_watches -= 1
                        fake._cond.notify_all()

        return Handler


@contextmanager
def running_kubernetes(workdir: str, **kw: Any) -> Iterator[tuple[FakeKubernetes, dict[str, str]]]:
    """Make a PKI in ``workdir``, start a :class:`FakeKubernetes`; yields (server, pki); closes on exit."""
    pki = make_pki(workdir)
    server = FakeKubernetes(pki, **kw).start()
    try:
        yield server, pki
    finally:
        server.close()


def write_service_account(directory: str, pki: Mapping[str, str], token: str, namespace: str) -> dict[str, str]:
    """A service-account directory like the kubelet mounts: token, ca.crt, namespace. Returns the paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "token").write_text(token)
    (d / "ca.crt").write_bytes(Path(pki["ca"]).read_bytes())
    (d / "namespace").write_text(namespace)
    return {"token_file": str(d / "token"), "ca_file": str(d / "ca.crt"), "namespace_file": str(d / "namespace")}


def rotate_token(token_file: str, token: str) -> None:
    """Replace the token file atomically, as the kubelet does (write + rename)."""
    tmp = token_file + ".tmp"
    Path(tmp).write_text(token)
    os.replace(tmp, token_file)
