"""Foundation 2.0 distribution entry points: ``foundation.attach(node)`` and ``foundation.BEAM.Distribution``.

The 1.x-style API is synchronous. ``attach`` takes a :class:`fabric.BlockingNode` (any thread may call) or
a :class:`fabric.Node`. An async Node's calls run on its event loop (``Node.loop``, or ``loop=``, or the
loop ``attach`` is called from): the synchronous calls run the Node's coroutines on that loop from any
other thread (from inside the loop, await the Node's methods directly).

Only the node's public API is used: ``name``, ``loop``, ``switch_topology(*args, expected_epoch=)`` and
``current_topology()`` (async on ``Node`` for the switch, synchronous on ``BlockingNode``).
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

from foundation._app import FoundationApp, default_app
from foundation._errors import Error, FoundationError, raise_error

__all__ = ["BEAM", "attach", "detach"]

_TIMEOUT = 30.0


class _Attached:
    """How to reach an attached node synchronously: directly (BlockingNode) or through its loop (Node)."""

    def __init__(self, node: Any, loop: asyncio.AbstractEventLoop | None) -> None:
        self.node = node
        # A coroutine-function switch_topology means an async Node: its calls go through `loop`.
        self.is_async = inspect.iscoroutinefunction(getattr(node, "switch_topology", None))
        self.loop = loop

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        fn: Callable[..., Any] = getattr(self.node, method)
        if not self.is_async:
            return fn(*args, **kwargs)
        loop = self.loop
        if loop is None or loop.is_closed() or not loop.is_running():
            raise_error(Error.new("service_unavailable", "the attached node's event loop is not running"))
        if _running_loop() is loop:
            raise_error(Error.new("service_unavailable", "called from the node's own event loop: await the Node method"))
        if inspect.iscoroutinefunction(fn):
            coro: Coroutine[Any, Any, Any] = fn(*args, **kwargs)
        else:  # a synchronous Node method: run it on the loop too, where the node's state lives
            async def on_loop() -> Any:
                return fn(*args, **kwargs)

            coro = on_loop()
        return asyncio.run_coroutine_threadsafe(coro, loop).result(_TIMEOUT)


# How each app reaches its attached node; ``app.node`` itself is the node object the user passed.
_ATTACHED: weakref.WeakKeyDictionary[FoundationApp, _Attached] = weakref.WeakKeyDictionary()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def attach(node: Any, *, app: FoundationApp | None = None, loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Attach a running fabric node to a Foundation app (default: the default app). Events then carry the
    node's name, and the 2.0 calls (``BEAM.Distribution``) act on that node's cluster.

    Args:
        node: a started :class:`fabric.BlockingNode` or :class:`fabric.Node`.
        app: the app to attach to.
        loop: the event loop an async ``Node`` runs on (default: ``node.loop`` once the node started,
            else the running loop when ``attach`` is called from a coroutine). Ignored for a BlockingNode.
    """
    target = app or default_app()
    _ATTACHED[target] = _Attached(node, loop or getattr(node, "loop", None) or _running_loop())
    target.node = node
    target.node_name = str(getattr(node, "name", "nonode@nohost"))


def detach(*, app: FoundationApp | None = None) -> None:
    """Undo :func:`attach` (the app is local-only again)."""
    target = app or default_app()
    _ATTACHED.pop(target, None)
    target.node = None
    target.node_name = "nonode@nohost"


def _attached(app: FoundationApp | None) -> _Attached:
    target = app or default_app()
    found = _ATTACHED.get(target) if target.node is not None else None
    if found is None:
        raise_error(Error.new("service_unavailable", "no fabric node attached: call foundation.attach(node) first"))
    return found


def _call(app: FoundationApp | None, method: str, *args: Any, **kwargs: Any) -> Any:
    attached = _attached(app)
    try:
        return attached.call(method, *args, **kwargs)
    except TimeoutError as exc:
        raise_error(Error.new("timeout", f"{method} did not finish within {_TIMEOUT:g}s"), exc)
    except FoundationError:
        raise
    except Exception as exc:  # fabric errors (conflict, cooldown, unknown overlay) become FoundationError
        from fabric import NodeStateError  # fabric sits below foundation; imported when first needed

        if isinstance(exc, NodeStateError):  # not started, stopped, or called from its own loop thread
            raise_error(Error.new("service_unavailable", f"{method}: the attached node cannot serve it: {exc}"), exc)
        raise_error(Error.new("invalid_input", f"{method} failed: {type(exc).__name__}: {exc}"), exc)


class _Distribution:
    """``foundation.BEAM.Distribution``: the cluster's topology, on the attached node."""

    def switch_topology(self, *args: str, expected_epoch: int | None = None,
                        app: FoundationApp | None = None) -> dict[str, Any]:
        """``switch_topology(new)`` or ``switch_topology(expected_current, new)``: switch the whole cluster's
        overlay live (see :meth:`fabric.Node.switch_topology`). Returns the new topology.

        Raises FoundationError (``service_unavailable`` when no node is attached, ``invalid_input`` for a
        compare-and-set mismatch, a cooldown or an unknown overlay)."""
        return dict(_call(app, "switch_topology", *args, expected_epoch=expected_epoch))

    def current_topology(self, *, app: FoundationApp | None = None) -> dict[str, Any]:
        """The topology the attached node sees: overlay, epoch, links, sizes."""
        return dict(_call(app, "current_topology"))


class _BEAM:
    """``foundation.BEAM``: BEAM-style distribution primitives (2.0)."""

    Distribution = _Distribution()


BEAM = _BEAM()
