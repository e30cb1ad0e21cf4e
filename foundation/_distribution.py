"""Foundation 2.0 distribution entry points: ``foundation.attach(node)`` and ``foundation.BEAM.Distribution``.

The 1.x-style API is synchronous. ``attach`` takes a :class:`fabric.BlockingNode` (any thread may call) or
a :class:`fabric.Node` (then these calls must come from a thread other than the node's event loop, which
they wait on; from inside the loop use the Node's async methods directly).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from ._app import FoundationApp, production
from ._errors import Error, raise_error

_TIMEOUT = 30.0


def attach(node: Any, *, app: FoundationApp | None = None) -> None:
    """Attach a running fabric node to the Foundation app (default: production). Events then carry the
    node's name, and the 2.0 calls (``BEAM.Distribution``) act on that node's cluster."""
    target = app or production()
    target.node = node
    target.node_name = str(getattr(node, "name", "nonode@nohost"))


def detach(*, app: FoundationApp | None = None) -> None:
    """Undo :func:`attach` (the app is local-only again)."""
    target = app or production()
    target.node = None
    target.node_name = "nonode@nohost"


def _node(app: FoundationApp | None) -> Any:
    node = (app or production()).node
    if node is None:
        raise_error(Error.new("service_unavailable", "no fabric node attached: call foundation.attach(node) first"))
    return node


def _run(node: Any, make: str, *args: Any, **kwargs: Any) -> Any:
    """Call coroutine method ``make`` of the (async) node, or of a BlockingNode's node, and wait for it."""
    inner = getattr(node, "node", node)  # BlockingNode wraps a Node
    loop: asyncio.AbstractEventLoop | None = getattr(inner, "_loop", None)
    if loop is None or not loop.is_running():
        raise_error(Error.new("service_unavailable", "the attached node is not running"))
    if getattr(loop, "_thread_id", None) == threading.get_ident():
        raise_error(Error.new("service_unavailable", "called from the node's own event loop: await the Node method"))
    coro: Coroutine[Any, Any, Any] = getattr(inner, make)(*args, **kwargs)
    try:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(_TIMEOUT)
    except TimeoutError as exc:
        raise_error(Error.new("timeout", f"{make} did not finish within {_TIMEOUT:g}s"), exc)
    except Exception as exc:  # fabric errors (conflict, cooldown, unknown overlay) become FoundationError
        raise_error(Error.new("invalid_input", f"{make} failed: {type(exc).__name__}: {exc}"), exc)


class _Distribution:
    """``foundation.BEAM.Distribution``: the cluster's topology, on the attached node."""

    def switch_topology(self, *args: str, expected_epoch: int | None = None, app: FoundationApp | None = None) -> dict[str, Any]:
        """``switch_topology(new)`` or ``switch_topology(expected_current, new)``: switch the whole cluster's
        overlay live (see :meth:`fabric.Node.switch_topology`). Returns the new topology.

        Raises FoundationError (``service_unavailable`` when no node is attached, ``invalid_input`` for a
        compare-and-set mismatch, a cooldown or an unknown overlay)."""
        return dict(_run(_node(app), "switch_topology", *args, expected_epoch=expected_epoch))

    def current_topology(self, *, app: FoundationApp | None = None) -> dict[str, Any]:
        """The topology the attached node sees: overlay, epoch, links, sizes."""
        node = _node(app)
        inner = getattr(node, "node", node)
        return dict(inner.current_topology())


class _BEAM:
    """``foundation.BEAM``: BEAM-style distribution primitives (2.0)."""

    Distribution = _Distribution()


BEAM = _BEAM()
