"""``foundation-node`` as real processes: start (TOML, env, flags), seeds, signals, leave, bad input."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tests.integration.test_cli_harness import NodeProcess, cli_command, run_cli
from tests.support import Child, free_port_range, python_env


def _members(seed: str) -> list[tuple[str, str]]:
    code, out, err = run_cli("members", "--node", seed, "--json")
    assert code == 0, err
    return [(m["name"], m["state"]) for m in json.loads(out)]


def test_cluster_of_processes_and_sigterm_says_bye() -> None:
    a = NodeProcess("--name", "pa")
    b = NodeProcess("--name", "pb", "--seed", a.seed)
    c = NodeProcess("--name", "pc", "--seed", a.seed, "--seed", b.seed)
    try:
        code, out, err = run_cli("members", "--node", a.seed, "--wait", "3", "--wait-timeout", "20")
        assert code == 0, err
        assert [line.split()[0] for line in out.splitlines()[1:]] == ["pa", "pb", "pc"]
        assert c.stop() == 0  # SIGTERM: clean exit
        stderr = c.child.proc.stderr
        assert _members(a.seed) == [("pa", "alive"), ("pb", "alive"), ("pc", "left")]
        assert _members(b.seed) == [("pb", "alive"), ("pa", "alive"), ("pc", "left")]
        assert stderr is not None and stderr.closed
    finally:
        for n in (c, b, a):
            n.stop()


def test_sigint_and_leave_exit_zero_and_log_why() -> None:
    a = NodeProcess("--name", "la")
    b = NodeProcess("--name", "lb", "--seed", a.seed)
    try:
        code, out, err = run_cli("leave", "--node", b.seed)
        assert code == 0 and "lb" in out, err
        assert b.child.proc.wait(15) == 0
        assert "stopped (leave)" in (b.child.proc.stderr.read() if b.child.proc.stderr else "")
        os.kill(a.pid, signal.SIGINT)
        assert a.child.proc.wait(15) == 0
        err_text = a.child.proc.stderr.read() if a.child.proc.stderr else ""
        assert "stopped (signal SIGINT)" in err_text and "Traceback" not in err_text
    finally:
        b.stop()
        a.stop()


def _stop_and_read_stderr(child: Child) -> tuple[int, str]:
    """SIGTERM our child, wait (bounded), and return its exit code and whole stderr."""
    child.proc.send_signal(signal.SIGTERM)
    code = child.proc.wait(15)
    err = child.proc.stderr.read() if child.proc.stderr else ""
    child.stop()
    return code, err


def test_seed_started_later_is_retried_with_progress() -> None:
    port = free_port_range()
    seed = f"tcp://127.0.0.1:{port}"
    early = NodeProcess("--name", "early", "--preset", "local", "--seed", seed, "--set", "membership.join_retry_max=0.3")
    late = None
    try:
        code, out, err = run_cli("status", "--node", early.seed, "--json")
        st = json.loads(out)
        assert st["seeds"] == [{"seed": seed, "linked": False, "peer": "", "peer_id": None,
                                "last_error": "no member from this seed yet"}]
        late = NodeProcess("--name", "late", "--port", str(port))
        assert late.seed == seed
        code, out, err = run_cli("members", "--node", early.seed, "--wait", "2", "--wait-timeout", "20")
        assert code == 0, err
        code, out, err = run_cli("status", "--node", early.seed, "--json")
        st = json.loads(out)
        assert st["seeds"][0]["linked"] and st["seeds"][0]["peer"] == "late"
    finally:
        if late is not None:
            late.stop()
        code, log = _stop_and_read_stderr(early.child)
    assert code == 0
    assert f"joining the cluster through 1 seed(s): {seed}" in log
    assert "member late up: 2 members alive" in log


def test_star_seeding_becomes_a_full_mesh_through_membership() -> None:
    hub = NodeProcess("--name", "hub")
    spokes = [NodeProcess("--name", f"spoke{i}", "--seed", hub.seed) for i in (1, 2)]
    try:
        # spoke1 never named spoke2: it learns it through the membership gossip
        code, out, err = run_cli("members", "--node", spokes[0].seed, "--wait", "3", "--wait-timeout", "20", "--json")
        assert code == 0, err
        assert [(m["name"], m["state"]) for m in json.loads(out)] == [("spoke1", "alive"), ("hub", "alive"), ("spoke2", "alive")]
        code, out, err = run_cli("topology", "--node", spokes[0].seed)
        assert "overlay: full-mesh" in out and "spoke1 -- spoke2: coordination" in out
        # phi exists once the detector has heard a heartbeat or two: poll, bounded
        for _ in range(20):
            code, out, err = run_cli("metrics", "--node", hub.seed)
            if 'fabric_member_phi{member="spoke1/' in out:
                break
        assert 'fabric_member_phi{member="spoke1/' in out, out
    finally:
        for n in (*spokes, hub):
            n.stop()


def test_settings_precedence_file_env_flags(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('name = "from-file"\ncall_timeout = 2.5\n[metadata]\nzone = "file-zone"\n[transport]\nlinger_ms = 50\n')
    env = python_env()
    env["FOUNDATION_NAME"] = "from-env"
    env["FOUNDATION_METADATA__RACK"] = "r7"
    child = Child([*cli_command(), "start", "--config", str(config), "--name", "from-flag", "--meta", "zone=flag-zone"], env=env)
    try:
        line = child.expect("ready ", timeout=30)
        assert "name=from-flag" in line
        seed = dict(item.split("=", 1) for item in line.split()[1:])["seed"]
        code, out, err = run_cli("status", "--node", seed, "--json")
        st = json.loads(out)
        assert st["config"]["metadata"] == {"zone": "flag-zone", "rack": "r7"}
    finally:
        assert child.stop() == 0
    env.pop("FOUNDATION_NAME")
    env["FOUNDATION_CONFIG"] = str(config)
    child = Child([*cli_command(), "start"], env=env)
    try:
        assert "name=from-file" in child.expect("ready ", timeout=30)
    finally:
        child.stop()


def _one_line_error(code: int, out: str, err: str, want_code: int, needle: str) -> None:
    assert code == want_code, (code, out, err)
    assert needle in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("name = [unclosed\n")
    _one_line_error(*run_cli("start", "--config", str(bad_toml)), 3, "invalid TOML")
    wrong_type = tmp_path / "wrong.toml"
    wrong_type.write_text('port = "high"\n')
    _one_line_error(*run_cli("start", "--config", str(wrong_type)), 3, "port: expected an integer")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 1\n")
    _one_line_error(*run_cli("start", "--config", str(unknown)), 3, "colour: unknown setting")
    _one_line_error(*run_cli("start", "--config", str(tmp_path / "missing.toml")), 3, "missing.toml")
    _one_line_error(*run_cli("start", "--port", "abc"), 2, "'--port'")
    _one_line_error(*run_cli("start", "--seed", "localhost:7946"), 3, "seeds")
    _one_line_error(*run_cli("start", "--name", "bad name"), 3, "name")
    env = python_env()
    env["FOUNDATION_CALL_TIMEOUT"] = "soon"
    _one_line_error(*run_cli("start", env=env), 3, "FOUNDATION_CALL_TIMEOUT: call_timeout: expected a number")
    _one_line_error(*run_cli("status", "--node", "tcp://127.0.0.1:1", "--timeout", "0.5"), 4, "no fabric node answers")
    _one_line_error(*run_cli("members", "--node", "tcp://nowhere.invalid:1"), 4, "cannot resolve host")
    _one_line_error(*run_cli("members", "--node", "127.0.0.1:1"), 4, "is not an endpoint")


def test_address_in_use_exits_5() -> None:
    a = NodeProcess("--name", "holder", "--http-port", "0")
    try:
        port = a.seed.rsplit(":", 1)[1]
        _one_line_error(*run_cli("start", "--name", "clash", "--port", port), 5, "cannot start node clash")
        http_port = a.http.rsplit(":", 1)[1]
        _one_line_error(*run_cli("start", "--name", "clash", "--http-port", http_port), 5, f"http_port: cannot listen on 127.0.0.1:{http_port}")
    finally:
        a.stop()


def test_toml_membership_table_and_nested_environment_reach_the_running_node(tmp_path: Path) -> None:
    """Issue 14, defect 4: a ``[membership]`` table killed the node at start (a raw dict), and
    ``FOUNDATION_MEMBERSHIP__SUSPECT_TIMEOUT`` was rejected."""
    config = tmp_path / "node.toml"
    config.write_text('name = "nested"\npreset = "local"\n[membership]\nheartbeat_interval = 0.3\nsuspect_timeout = 1.5\n')
    env = python_env()
    env["FOUNDATION_MEMBERSHIP__SUSPECT_TIMEOUT"] = "2.5"  # the environment wins over the file
    env["FOUNDATION_CHANNELS__DATA__PARALLELISM"] = "2"
    child = Child([*cli_command(), "start", "--config", str(config), "--set", "transport.linger_ms=75"], env=env)
    try:
        line = child.expect("ready ", timeout=30)
        seed = dict(item.split("=", 1) for item in line.split()[1:])["seed"]
        code, out, err = run_cli("status", "--node", seed, "--json")
        assert code == 0, err
        settings = json.loads(out)["settings"]
        assert settings["membership"]["suspect_timeout"] == 2.5
        assert settings["membership"]["heartbeat_interval"] == 0.3
        assert settings["transport"]["linger_ms"] == 75
        assert [c["parallelism"] for c in settings["channels"] if c["name"] == "data"] == [2]
        code, out, err = run_cli("health", "--node", seed)
        assert code == 0, out + err
    finally:
        assert child.stop() == 0
