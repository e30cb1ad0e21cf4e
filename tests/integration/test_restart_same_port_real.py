"""A node restarted with the same id and the same ports is relinked, not black-holed (issue 14, defect 6).

``kill -9`` then start again at once (the survivor has not yet declared the old incarnation down): the
restarted node must join within the detection bound, and every message the survivor sends it after the
survivor sees the new incarnation up must arrive (``send()``'s promise, docs/guide.md). Before the fix, in
6 of 11 tries the survivor's ``send()`` returned True for thousands of messages the restarted node never got.
Three restarts in a row, on a control and a bulk channel.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.integration.test_membership_processes import BOUND
from tests.integration.test_node_processes import NodeChild, node_child
from tests.support import free_port_range

CHANNELS = 5  # membership, coordination, gossip, data, events: channel i binds port + i


def tally(child: NodeChild, channel: str) -> int:
    child.command("stats")
    return int(child.expect("stats")["tally"].get(channel, 0))


def wait_tally(child: NodeChild, channel: str, want: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    got = tally(child, channel)
    while got < want and time.monotonic() < deadline:
        time.sleep(0.2)
        got = tally(child, channel)
    return got


def test_restart_with_same_id_and_port_relinks_and_loses_nothing_sent_after_it_is_up() -> None:
    b_id, port = str(uuid.uuid4()), free_port_range(CHANNELS)
    args = ("--name", "b", "--node-id", b_id, "--port", str(port), "--quiet")
    with node_child("--name", "a") as a:
        b = NodeChild(*args, "--join", a.seed, "--min-members", "2")
        try:
            b.expect("joined", 30)
            a.expect("member", 30, kind="MemberUp", name="b")
            for attempt in range(3):
                b.child.kill9()  # no BYE; the survivor still lists the old incarnation alive
                b.child.stop()
                b = NodeChild(*args, "--join", a.seed, "--min-members", "2")
                incarnation = b.ready["incarnation"]
                try:
                    b.expect("joined", BOUND + 10)
                except TimeoutError:
                    a.command("members")
                    raise AssertionError(f"restart {attempt} did not join; a sees {a.expect('members')}") from None
                up: dict[str, Any] = a.expect("member", BOUND + 10, kind="MemberUp", name="b", incarnation=incarnation)
                assert up["incarnation"] == incarnation
                for channel, count in (("coordination", 2000), ("data", 300)):
                    a.command(f"sendmany {b_id} {channel} {count} r{attempt}")
                    accepted = a.expect("sentmany", 60)["accepted"]
                    assert accepted == count, f"send() refused {count - accepted} of {count} on {channel}"
                    got = wait_tally(b, channel, count, 60)
                    assert got == count, f"restart {attempt}: {channel}: {count} accepted, {got} delivered"
        finally:
            b.stop()
