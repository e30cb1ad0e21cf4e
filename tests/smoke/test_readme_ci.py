"""The README's Quickstart commands stay true: .ci/run runs exactly the README's test command."""

from __future__ import annotations

import re

from tests.support import REPO


def _quickstart_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [c.strip() for c in re.findall(r"```sh\n(.*?)```", section, flags=re.S)]


def test_readme_has_exactly_two_quickstart_commands() -> None:
    commands = _quickstart_commands()
    assert len(commands) == 2
    assert commands[0].endswith("foundation-node demo")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert _quickstart_commands()[1] in ci.splitlines()
