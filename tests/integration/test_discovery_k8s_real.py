"""Opt-in: the kubernetes strategy against a real cluster. Skipped unless ``KUBECONFIG`` is set.

The strategy itself never reads a kubeconfig (in a pod it uses its service account); this test only
borrows the kubeconfig's server, CA and bearer token to play a pod. It watches the EndpointSlice of the
``kubernetes`` Service in ``default`` (present in every cluster; its port is named ``https``), so nothing
needs deploying. Needs a token-based user (``kubectl create token ...``); client-certificate and exec
users are skipped. The kubeconfig may be JSON, or YAML when ``kubectl`` is installed to convert it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from fabric.discovery import LocalNode
from fabric.discovery.kubernetes import KubernetesConfig, KubernetesPlugin
from tests.support import short_tmpdir

KUBECONFIG = os.environ.get("KUBECONFIG", "")
pytestmark = pytest.mark.skipif(not KUBECONFIG, reason="set KUBECONFIG to test against a real cluster")


def load_kubeconfig(path: str) -> dict[str, Any]:
    text = Path(path).read_text()
    try:
        loaded: dict[str, Any] = json.loads(text)
        return loaded
    except ValueError:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            pytest.skip("kubeconfig is YAML and kubectl is not installed to convert it")
        out = subprocess.run([kubectl, "config", "view", "--raw", "-o", "json"], check=True, capture_output=True,
                             text=True, timeout=30, env={**os.environ, "KUBECONFIG": path}).stdout
        converted: dict[str, Any] = json.loads(out)
        return converted


def test_watch_the_kubernetes_service_endpointslice() -> None:
    config = load_kubeconfig(KUBECONFIG)
    context_name = config.get("current-context")
    context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    token = user.get("token")
    if not token:
        pytest.skip("the kubeconfig user has no bearer token (client certificates / exec are not supported here)")
    with short_tmpdir("ffk8sreal") as workdir:
        ca_file = Path(workdir) / "ca.crt"
        if "certificate-authority-data" in cluster:
            ca_file.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        elif "certificate-authority" in cluster:
            ca_file.write_bytes(Path(cluster["certificate-authority"]).read_bytes())
        else:
            pytest.skip("no cluster CA in the kubeconfig")
        (Path(workdir) / "token").write_text(token)
        plugin = KubernetesPlugin(KubernetesConfig(
            api_server=cluster["server"], namespace="default", service="kubernetes", port_name="https",
            derive_endpoints=False, token_file=f"{workdir}/token", ca_file=str(ca_file), backoff_max=2.0))

        async def scenario() -> None:
            await plugin.start(LocalNode(node_id=str(uuid.uuid4()), name="probe",
                                         endpoints={"membership": "tcp://127.0.0.1:1"}))
            try:
                candidates = await plugin.lookup()
                assert candidates, plugin.stats()
                assert all(c.source == "kubernetes" and c.meta["slice"].startswith("kubernetes") for c in candidates)
                deadline = time.monotonic() + 10
                while plugin.stats()["watches"] < 1:
                    assert time.monotonic() < deadline, plugin.stats()
                    await asyncio.sleep(0.1)
                assert plugin.stats()["failures"] == 0 and plugin.last_success is not None
            finally:
                await plugin.stop()

        asyncio.run(scenario())
