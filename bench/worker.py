"""Child-process entry point: ``python -m bench.worker ROLE ARGS_JSON`` runs one benchmark role.

A client role may be started before its server is ready (``endpoints_on_stdin``): it then reads the
server's endpoints as the first stdin line. The role talks to the parent through :class:`bench.harness.Control` (JSON events on stdout, ``stop`` on
stdin). An exception inside a role becomes an ``error`` event carrying the traceback, and exit status 1.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

from bench.harness import Control

Role = Callable[[Control, dict[str, Any]], None]


def lookup(name: str) -> Role:
    """The role function called ``name``; fabric roles are imported only when asked for (raises KeyError)."""
    module = importlib.import_module("bench.fabric_roles" if name.startswith("fabric_") else "bench.raw_roles")
    roles: dict[str, Role] = module.ROLES
    return roles[name]


def main(argv: list[str]) -> int:
    """Run the role named by ``argv[0]`` with the JSON arguments in ``argv[1]``; return the exit status."""
    args = json.loads(argv[1]) if len(argv) > 1 else {}
    role = lookup(argv[0])  # imports the role's libraries while the server is still starting
    if args.pop("endpoints_on_stdin", False):
        # Started alongside its server to overlap interpreter start-up; the first stdin line is the
        # server's endpoints (or "stop" when the server failed to start).
        line = sys.stdin.readline()
        if not line.startswith("{"):
            return 0
        args["endpoints"] = json.loads(line)
    ctl = Control()
    try:
        role(ctl, args)
    except BaseException:
        ctl.emit("error", message=traceback.format_exc())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
