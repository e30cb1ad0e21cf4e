"""A non-Python peer (Node.js with the `zeromq` package) talks to a Python node using docs/protocol.md.

.ci/run installs Node.js and the peer's packages (`npm ci` in tests/integration/foreign); in CI a missing
piece fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from fabric import BlockingNode, Message, NodeConfig
from tests.support import IN_CI, Child, require_tool

FOREIGN = Path(__file__).parent / "foreign"


def test_nodejs_client_hello_call_send_and_subscribe() -> None:
    node_bin = require_tool("node")
    if not (FOREIGN / "node_modules" / "zeromq").is_dir():
        msg = "npm packages missing: run `npm ci --prefix tests/integration/foreign`"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    with BlockingNode(NodeConfig.local(name="py-node")) as node:
        node.add_service("echo", lambda request: request)

        def boom(request: object) -> object:
            raise KeyError(request)

        node.add_service("boom", boom)
        got: list[Message] = []
        arrived = threading.Event()

        def on_message(msg: Message) -> None:
            got.append(msg)
            arrived.set()

        node.subscribe("coordination", on_message)
        peer = Child([node_bin, str(FOREIGN / "client.js"), node.seed])
        try:
            steps: dict[str, dict[str, object]] = {}
            while "subscribed" not in steps:
                line = json.loads(peer.readline(30))
                assert line["step"] != "failed", line
                steps[str(line["step"])] = line
            # The SUB joins asynchronously: publish until the peer reports a message.
            for _ in range(300):
                node.broadcast(b"from python", topic=b"news")
                try:
                    line = json.loads(peer.readline(0.05))
                except TimeoutError:
                    continue
                steps[str(line["step"])] = line
                break
        finally:
            assert peer.proc.wait(30) == 0, peer.stderr_tail()
            peer.stop()
        assert steps["welcome"] == {"step": "welcome", "name": "py-node", "version": 1}
        assert steps["reply"] == {"step": "reply", "type": 6, "corr": 1, "value": {"from": "node", "n": [1, 2, 3]}}
        assert steps["error"] == {"step": "error", "type": 7, "code": 2, "etype": "KeyError"}
        assert steps["published"] == {"step": "published", "type": 12, "topic": "news", "payload": "from python"}
        assert arrived.wait(10) and bytes(got[0].payload) == b"hello from node"
        assert node.stats()["errors"] == {}
