"""Membership with real processes on 127.0.0.1: join through one seed, kill -9 detection, restart.

The detection bound is the documented one (docs/membership.md, ``MembershipConfig.detection_bound``)
computed for this machine class: loopback delays of up to 250 ms with 250 ms of jitter on a loaded
2-core CI machine. The node processes use ``NodeConfig.local()`` timers.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fabric.membership import MembershipConfig
from tests.integration.test_node_processes import NodeChild, node_child

BOUND = MembershipConfig.local().detection_bound(max_latency=0.25, jitter=0.25)


def wait_member_event(child: NodeChild, kind: str, name: str, timeout: float, **match: Any) -> dict[str, Any]:
    return child.expect("member", timeout, kind=kind, name=name, **match)


def test_three_processes_form_a_mesh_detect_a_kill_and_see_the_restart_as_a_new_incarnation() -> None:
    c_id = str(uuid.uuid4())
    with node_child("--name", "a") as a:
        with node_child("--name", "b", "--join", a.seed, "--min-members", "3") as b:
            c = NodeChild("--name", "c", "--join", a.seed, "--min-members", "3", "--node-id", c_id)
            try:
                assert c.expect("joined", 30)["members"] == ["a", "b", "c"]
                assert b.expect("joined", 30)["members"] == ["a", "b", "c"]
                first_incarnation = c.ready["incarnation"]
                for observer in (a, b):
                    wait_member_event(observer, "MemberUp", "c", 30, incarnation=first_incarnation)
                # everyone holds the same view
                for observer in (a, b):
                    observer.command("members")
                    view = observer.expect("members")["members"]
                    assert sorted((m["name"], m["status"]) for m in view) == [("a", "alive"), ("b", "alive"), ("c", "alive")]
                # kill -9: no BYE, no leave; only the failure detector can tell
                killed_at = time.monotonic()
                c.child.kill9()
                for observer in (a, b):
                    down = wait_member_event(observer, "MemberDown", "c", BOUND + 10)
                    assert down["incarnation"] == first_incarnation
                    assert down["reason"] in ("unreachable", "reported")
                detected_after = time.monotonic() - killed_at
                print(f"kill -9 detected by both observers after {detected_after:.2f}s (bound {BOUND:.2f}s)")
                assert detected_after <= BOUND + 1.0  # + process scheduling and pipe delays of this test
            finally:
                c.stop()
            # restart with the same node id: a new incarnation, never the old one resurrected
            c2 = NodeChild("--name", "c", "--join", a.seed, "--min-members", "3", "--node-id", c_id)
            try:
                try:
                    c2.expect("joined", 30)
                except TimeoutError:
                    a.command("members")
                    raise AssertionError(
                        f"restart did not join: c2 reported {c2.backlog}; "
                        f"a sees {a.expect('members')['members']} after {a.backlog}"
                    ) from None
                second_incarnation = c2.ready["incarnation"]
                assert second_incarnation > first_incarnation
                for observer in (a, b):
                    up = wait_member_event(observer, "MemberUp", "c", 30)
                    assert up["incarnation"] == second_incarnation
                    observer.command("members")
                    view = {m["name"]: m for m in observer.expect("members")["members"]}
                    assert view["c"]["incarnation"] == second_incarnation and view["c"]["status"] == "alive"
            finally:
                c2.stop()
            # a graceful stop is seen as a leave at once
            for observer in (a, b):
                try:
                    wait_member_event(observer, "MemberLeft", "c", 10, incarnation=second_incarnation)
                except TimeoutError:
                    raise AssertionError(f"no MemberLeft; seen: {observer.backlog}") from None
