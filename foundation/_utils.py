"""``Utils``: ids, timestamps, size-bounded previews, nested-map helpers, retry, formatting (1.x §1.7)."""

from __future__ import annotations

import itertools
import os
import random
import re
import resource
import sys
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import msgpack

from foundation._errors import Error, FoundationError, MaxAttemptsExceeded, value_error

__all__ = ["Utils"]

T = TypeVar("T")

# 1.x: unique_integer * 1_000_000 + |phash2(make_ref())| + 1. A per-process random salt keeps ids from two
# processes apart without a shared counter; the counter keeps them unique and increasing within one.
_ID_COUNTER = itertools.count(1)
_ID_SALT = random.SystemRandom().randrange(1_000_000)
_WS = re.compile(r"\s+")


def _msgpack_default(obj: Any) -> Any:
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=repr)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def packb(data: Any) -> bytes:
    """msgpack encoding used for sizes and serialization (tuples become arrays, sets sorted arrays)."""
    return msgpack.packb(data, default=_msgpack_default, use_bin_type=True)  # type: ignore[no-any-return]


class Utils:
    """Stateless helpers; every function is thread-safe and can be called from any thread."""

    @staticmethod
    def generate_id() -> int:
        """A unique positive integer id (increasing within this process)."""
        return next(_ID_COUNTER) * 1_000_000 + _ID_SALT + 1

    @staticmethod
    def generate_correlation_id() -> str:
        """A lowercase 36-character UUIDv4 string."""
        return str(uuid.uuid4())

    @staticmethod
    def monotonic_timestamp() -> int:
        """Monotonic time in integer milliseconds."""
        return time.monotonic_ns() // 1_000_000

    @staticmethod
    def wall_timestamp() -> int:
        """Wall-clock time in integer nanoseconds since the epoch."""
        return time.time_ns()

    @staticmethod
    def deep_size(data: Any) -> int:
        """Size in bytes of the msgpack encoding of ``data``; 0 if it cannot be encoded (1.x ``external_size``)."""
        try:
            return len(packb(data))
        except (TypeError, ValueError, OverflowError):
            return 0

    @staticmethod
    def truncate_if_large(data: Any, max_size: int = 10_000) -> Any:
        """``data`` unchanged if its encoded size is at most ``max_size`` bytes, else a preview map
        ``{"truncated": True, "original_size", "preview", "timestamp"}`` (str/bytes: first 100 + "...";
        list: first 10 items as ``repr``; dict: first 5 entries)."""
        size = Utils.deep_size(data)
        if size <= max_size:
            return data
        preview: Any
        if isinstance(data, str):
            preview = data[:100] + "..."
        elif isinstance(data, bytes):
            preview = data[:100] + b"..."
        elif isinstance(data, list | tuple):
            preview = [Utils.safe_inspect(x) for x in list(data)[:10]]
        elif isinstance(data, Mapping):
            preview = dict(list(data.items())[:5])
        else:
            preview = Utils.safe_inspect(data)
        return {"truncated": True, "original_size": size, "preview": preview,
                "timestamp": Utils.monotonic_timestamp()}

    @staticmethod
    def safe_inspect(term: Any, limit: int = 100) -> str:
        """``repr(term)`` cut to ``limit`` characters; ``"<uninspectable>"`` if ``repr`` raises."""
        try:
            text = repr(term)
        except Exception:
            return "<uninspectable>"
        return text if len(text) <= limit else text[:limit] + "..."

    @staticmethod
    def deep_merge(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
        """Recursive merge of two mappings; on conflicts ``right`` wins unless both values are mappings."""
        out = dict(left)
        for key, value in right.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = Utils.deep_merge(out[key], value)
            else:
                out[key] = value
        return out

    @staticmethod
    def get_nested(data: Mapping[str, Any], path: Sequence[Any], default: Any = None) -> Any:
        """The value at ``path`` in nested mappings, or ``default`` when missing or ``None``."""
        current: Any = data
        for key in path:
            if not isinstance(current, Mapping) or key not in current:
                return default
            current = current[key]
        return default if current is None else current

    @staticmethod
    def put_nested(data: Mapping[str, Any], path: Sequence[Any], value: Any) -> dict[str, Any]:
        """A copy of ``data`` with ``value`` at ``path``, creating intermediate dicts. ``data`` is unchanged.

        Raises:
            FoundationValueError: ``path`` is empty.
        """
        if not path:
            raise value_error("path must not be empty")
        out = dict(data)
        head, *rest = path
        if rest:
            child = out.get(head)
            out[head] = Utils.put_nested(child if isinstance(child, Mapping) else {}, rest, value)
        else:
            out[head] = value
        return out

    @staticmethod
    def sanitize_string(text: str) -> str:
        """Control whitespace to spaces, runs of whitespace collapsed, trimmed."""
        return _WS.sub(" ", text).strip()

    @staticmethod
    def atomize_keys(data: Any) -> Any:
        """Identity: Python has no atoms, keys stay strings (kept so 1.x call sites port unchanged)."""
        return data

    @staticmethod
    def stringify_keys(data: Any) -> Any:
        """Recursively convert mapping keys to ``str`` (lists are walked too)."""
        if isinstance(data, Mapping):
            return {str(k): Utils.stringify_keys(v) for k, v in data.items()}
        if isinstance(data, list):
            return [Utils.stringify_keys(v) for v in data]
        return data

    @staticmethod
    def retry(
        fn: Callable[[], Any],
        max_attempts: int = 3,
        base_delay: int = 100,
        max_delay: int = 5000,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Any:
        """Call ``fn`` until it succeeds, at most ``max_attempts`` times.

        A call fails when it raises :class:`FoundationError` or returns ``("error", _)``. Between attempts
        it sleeps ``min(base_delay * 2**(n-1), max_delay)`` ms via ``sleep`` (seconds; injectable for
        tests). ``("ok", v)`` returns ``v``; any other value is returned as is. Other exceptions propagate.

        Raises:
            MaxAttemptsExceeded: every attempt failed (``context["last_error"]`` is the last failure).
            FoundationValueError: ``max_attempts`` < 1.
        """
        if max_attempts < 1:
            raise value_error("max_attempts must be >= 1")
        last: Any = None
        for attempt in range(1, max_attempts + 1):
            try:
                result = fn()
            except FoundationError as exc:
                last = exc.error
            else:
                if isinstance(result, tuple) and len(result) == 2 and result[0] == "error":
                    last = result[1]
                elif isinstance(result, tuple) and len(result) == 2 and result[0] == "ok":
                    return result[1]
                else:
                    return result
            if attempt < max_attempts:
                sleep(min(base_delay * 2 ** (attempt - 1), max_delay) / 1000)
        raise MaxAttemptsExceeded(Error.new(
            "max_attempts_exceeded", f"gave up after {max_attempts} attempts",
            context={"max_attempts": max_attempts, "last_error": last},
        ))

    @staticmethod
    def blank(value: Any) -> bool:
        """True for ``None``, ``""``, whitespace-only strings, empty lists/tuples and empty dicts."""
        if value is None:
            return True
        if isinstance(value, str):
            return value.strip() == ""
        if isinstance(value, list | tuple | dict):
            return len(value) == 0
        return False

    @staticmethod
    def present(value: Any) -> bool:
        """``not blank(value)``."""
        return not Utils.blank(value)

    @staticmethod
    def format_duration(ns: int) -> str:
        """``"1.5s" | "2.5ms" | "1.5μs" | "500ns"`` (one decimal)."""
        if ns >= 1_000_000_000:
            return f"{ns / 1_000_000_000:.1f}s"
        if ns >= 1_000_000:
            return f"{ns / 1_000_000:.1f}ms"
        if ns >= 1_000:
            return f"{ns / 1_000:.1f}μs"
        return f"{ns}ns"

    @staticmethod
    def format_bytes(n: int) -> str:
        """``"512 B" | "1.0 KB" | "1.5 MB" | "2.0 GB"`` (binary multiples)."""
        if n < 1024:
            return f"{n} B"
        if n < 1024**2:
            return f"{n / 1024:.1f} KB"
        if n < 1024**3:
            return f"{n / 1024**2:.1f} MB"
        return f"{n / 1024**3:.1f} GB"

    @staticmethod
    def measure(fn: Callable[[], T]) -> tuple[T, int]:
        """``(fn(), elapsed microseconds)``."""
        start = time.perf_counter_ns()
        result = fn()
        return result, (time.perf_counter_ns() - start) // 1_000

    @staticmethod
    def measure_memory(fn: Callable[[], T]) -> tuple[T, tuple[int, int, int]]:
        """``(fn(), (before, after, after - before))`` traced Python heap bytes (tracemalloc)."""
        started = not tracemalloc.is_tracing()
        if started:
            tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            result = fn()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            if started:
                tracemalloc.stop()
        return result, (before, after, after - before)

    @staticmethod
    def process_stats() -> dict[str, Any]:
        """This process: pid, thread count, max RSS (KiB), CPU seconds."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"pid": os.getpid(), "thread_count": threading.active_count(), "max_rss_kb": usage.ru_maxrss,
                "user_cpu_s": usage.ru_utime, "system_cpu_s": usage.ru_stime,
                "timestamp": Utils.monotonic_timestamp()}

    @staticmethod
    def system_stats() -> dict[str, Any]:
        """The host: CPU count, load averages, Python version, platform."""
        try:
            load = list(os.getloadavg())
        except OSError:
            load = []
        return {"cpu_count": os.cpu_count(), "load_average": load, "python_version": sys.version.split()[0],
                "platform": sys.platform, "timestamp": Utils.monotonic_timestamp()}

    @staticmethod
    def valid_positive_integer(value: Any) -> bool:
        """True for an ``int`` (not ``bool``) greater than 0."""
        return isinstance(value, int) and not isinstance(value, bool) and value > 0
