"""Process-wide transport state: the one libzmq context, glibc's allocator thresholds and the CPU priority
of the libzmq I/O threads.

These belong to the process, not to one node: every node of a process shares the context (inproc://
needs that, and 50 nodes in a process must not start 100 I/O threads), ``mallopt`` is per process, and so
are the I/O threads. They are applied once, when the first transport of the process binds
(:func:`shared_context`), and stay while any transport uses the context. A transport that asks for
different values while they are in force gets :class:`~fabric.errors.ProcessSettingsConflict` instead of
being silently ignored; :func:`process_settings_in_force` is what ``Node.stats()["transport"]["process"]``
shows. Any thread may call these functions.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import zmq

from ..config import TransportConfig
from ..errors import ProcessSettingsConflict

log = logging.getLogger("fabric.transport.zmq")

_ctx_lock = threading.Lock()
_ctx: zmq.Context[zmq.Socket[bytes]] | None = None
_ctx_pid = 0
_ctx_users = 0
_ctx_settings: dict[str, Any] | None = None  # the process-wide settings the live context was made with


def process_settings(config: TransportConfig) -> dict[str, Any]:
    """The part of ``config`` that is process-wide (one libzmq context, one allocator per process)."""
    return {
        "io_threads": config.io_threads,
        "max_sockets": config.max_sockets,
        "malloc_trim_threshold": config.malloc_trim_threshold,
        "io_thread_nice": list(config.io_thread_nice[: config.io_threads]),
    }


def process_settings_in_force() -> dict[str, Any]:
    """What this process runs with: the settings of the live shared context (empty when there is none),
    what ``tune_malloc`` set (``malloc``: None when nothing was changed) and the I/O thread nice values."""
    with _ctx_lock:
        live = dict(_ctx_settings) if _ctx is not None and _ctx_pid == os.getpid() and _ctx_settings else {}
    return {"context": live, "malloc": _malloc_applied if _malloc_pid == os.getpid() else None,
            "io_thread_nice": dict(io_thread_nice_applied)}


_MMAP_THRESHOLD = 32 * 1024 * 1024
"""glibc's largest M_MMAP_THRESHOLD (HEAP_MAX_SIZE / 2 on 64-bit): messages up to this size come from the heap."""
_malloc_applied: dict[str, int] | None = None
_malloc_pid = 0


def tune_malloc(trim_threshold: int) -> dict[str, int] | None:
    """Apply ``TransportConfig.malloc_trim_threshold`` (see there) once per process; return what was set.

    Returns None, changing nothing, when ``trim_threshold`` is 0, the C library is not glibc, or the
    environment already carries a malloc setting (MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_, a
    glibc.malloc tunable). Later calls in the same process return the first call's result. Any thread.
    """
    global _malloc_applied, _malloc_pid
    if _malloc_pid == os.getpid():
        return _malloc_applied
    _malloc_pid = os.getpid()
    _malloc_applied = None
    env = os.environ
    if (
        trim_threshold <= 0
        or "MALLOC_TRIM_THRESHOLD_" in env
        or "MALLOC_MMAP_THRESHOLD_" in env
        or "glibc.malloc" in env.get("GLIBC_TUNABLES", "")
    ):
        return None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        mallopt = ctypes.CDLL(None).mallopt
    except (ValueError, OSError, AttributeError):  # not glibc (musl, macOS): leave the allocator alone
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # M_MMAP_THRESHOLD first: setting either one freezes glibc's dynamic thresholds, and a frozen
    # mmap threshold of 128 KiB would map (and fault in) every large message afresh.
    if mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) != 1 or mallopt(_M_TRIM_THRESHOLD, trim_threshold) != 1:
        log.warning("mallopt refused the malloc thresholds; allocator left at its defaults")
        return None
    _malloc_applied = {"mmap_threshold": _MMAP_THRESHOLD, "trim_threshold": trim_threshold}
    return _malloc_applied


_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3


_THREAD_NAME_PREFIX = 7
"""ZMQ_THREAD_NAME_PREFIX of the fabric's context: its threads are called ``7/ZMQbg/IO/<n>`` (``top -H``
shows them), which tells them apart from the threads of any other libzmq context in the process."""
io_thread_nice_applied: dict[int, int] = {}
"""I/O thread index -> the nice value :func:`shared_context` gave it (empty when nothing was changed)."""


def shared_context(config: TransportConfig | None = None) -> zmq.Context[zmq.Socket[bytes]]:
    """The process-wide libzmq context (created on first use with ``config``'s I/O threads and socket cap;
    creating it also applies ``config.malloc_trim_threshold``, see :func:`tune_malloc`, and
    ``config.io_thread_nice``, see :func:`renice_io_threads`).

    A child created by ``fork`` gets a fresh one: a libzmq context must not cross a fork.

    Raises :class:`~fabric.errors.ProcessSettingsConflict` when ``config`` is given and its process-wide
    settings (:func:`process_settings`) differ from those the live context was created with: they
    cannot change while it lives, and ignoring the request silently would hide a misconfiguration.
    """
    global _ctx, _ctx_pid, _ctx_settings
    wanted = process_settings(config) if config is not None else None
    config = config or TransportConfig()
    with _ctx_lock:
        if _ctx is not None and not _ctx.closed and _ctx_pid == os.getpid():
            if wanted is not None and _ctx_settings is not None and wanted != _ctx_settings:
                differ = ", ".join(f"{k}={wanted[k]!r} (in force: {_ctx_settings[k]!r})"
                                   for k in wanted if wanted[k] != _ctx_settings[k])
                raise ProcessSettingsConflict(
                    f"transport settings are process-wide and already in force for this process: {differ}; "
                    "give every node of one process the same values, or run it in its own process")
        else:
            applied = _malloc_applied if _malloc_pid == os.getpid() else None
            if wanted is not None and applied is not None and applied["trim_threshold"] != config.malloc_trim_threshold:
                # mallopt is applied once per process (an earlier context set it): a new value would be ignored
                raise ProcessSettingsConflict(
                    f"transport.malloc_trim_threshold={config.malloc_trim_threshold} but this process already "
                    f"runs with {applied['trim_threshold']} (applied once per process)")
            tune_malloc(config.malloc_trim_threshold)
            ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=config.io_threads)
            ctx.set(zmq.MAX_SOCKETS, config.max_sockets)
            ctx.set(zmq.THREAD_NAME_PREFIX, _THREAD_NAME_PREFIX)
            _ctx, _ctx_pid = ctx, os.getpid()
            _ctx_settings = process_settings(config)
            io_thread_nice_applied.clear()
            increments = config.io_thread_nice[: config.io_threads]
            if any(increments):
                # libzmq starts its threads with the first socket: start them now to renice them.
                ctx.socket(zmq.PAIR).close(0)
                io_thread_nice_applied.update(renice_io_threads(increments))
        return _ctx


def renice_io_threads(increments: Sequence[int], prefix: int = _THREAD_NAME_PREFIX) -> dict[int, int]:
    """Lower the CPU priority of the fabric context's libzmq I/O threads: I/O thread ``i`` gets the
    calling thread's nice value plus ``increments[i]`` (see ``TransportConfig.io_thread_nice``).

    Linux only (per-thread nice values, thread names in /proc); elsewhere, or when a thread cannot be
    found or changed, it logs at debug level and changes nothing. Returns index -> nice value set.
    """
    applied: dict[int, int] = {}
    wanted = {i: n for i, n in enumerate(increments) if n > 0}
    if not wanted or not os.path.isdir("/proc/self/task"):
        return applied
    base = os.getpriority(os.PRIO_PROCESS, 0)  # Linux: 0 is the calling thread
    names = {f"{prefix}/ZMQbg/IO/{i}": i for i in wanted}
    # Each thread names itself as it starts; give the new ones a moment (bounded) to do so.
    for _attempt in range(50):
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    index = names.get(f.read().strip())
            except OSError:  # the thread ended meanwhile
                continue
            if index is None or index in applied:
                continue
            value = min(19, base + wanted[index])
            try:
                os.setpriority(os.PRIO_PROCESS, int(tid), value)
            except OSError as exc:
                log.debug("cannot renice libzmq I/O thread %d: %s", index, exc)
                applied[index] = base
                continue
            applied[index] = value
        if len(applied) == len(wanted):
            break
        threading.Event().wait(0.002)
    missing = sorted(set(wanted) - set(applied))
    if missing:
        log.debug("libzmq I/O threads %s not found; their priority is unchanged", missing)
    return {i: n for i, n in applied.items() if n != base}


def _acquire_context(config: TransportConfig) -> zmq.Context[zmq.Socket[bytes]]:
    global _ctx_users
    with _ctx_lock:
        _ctx_users += 1
    try:
        return shared_context(config)
    except BaseException:
        with _ctx_lock:
            _ctx_users -= 1
        raise


def _release_context() -> zmq.Context[zmq.Socket[bytes]] | None:
    """Drop one user; return the context when that was the last user (the caller terminates it)."""
    global _ctx, _ctx_users
    with _ctx_lock:
        _ctx_users -= 1
        if _ctx_users > 0 or _ctx is None:
            return None
        ctx, _ctx = _ctx, None
        return ctx


__all__ = ["io_thread_nice_applied", "process_settings", "process_settings_in_force", "renice_io_threads",
           "shared_context", "tune_malloc"]
