"""``ErrorContext``: operation context with breadcrumbs, carried in a :mod:`contextvars` variable.

1.x kept the current context in the process dictionary; a ``ContextVar`` is the Python equivalent that
also follows asyncio tasks and ``contextvars.copy_context()`` thread hand-offs. Contexts are immutable:
every ``add_*`` returns a new one. ``with_context(ctx, fn)`` sets the variable for the duration of ``fn``;
on success it returns ``fn()`` and emits the ``("foundation", "operations", "duration")`` gauge (ms), on
failure it raises :class:`FoundationError` (``internal_error``, 2401, critical) whose context holds the
operation's breadcrumbs, chained to the original exception (1.x returned that error as a tuple).

Both the gauge and the error metrics go to the context's ``telemetry`` (inherited by child contexts;
``FoundationApp.error_context`` binds an app's), else to the default app's telemetry.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from foundation._clock import Clock, SystemClock
from foundation._errors import Error, FoundationError, exception_for
from foundation._ports import MetricsSink, default_sink
from foundation._utils import Utils

__all__ = ["Breadcrumb", "ErrorContext"]

T = TypeVar("T")
_CURRENT: contextvars.ContextVar[ErrorContext | None] = contextvars.ContextVar("foundation_error_context",
                                                                                default=None)
_DEFAULT_CLOCK: Clock = SystemClock()


@dataclass(frozen=True, slots=True)
class Breadcrumb:
    """One step of an operation: where (module, function), when (monotonic ms) and extra metadata."""

    module: str
    function: str
    timestamp: int
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ErrorContext:
    """An operation context (1.x ``Foundation.ErrorContext``). Immutable; safe to share between threads."""

    operation_id: int
    module: str
    function: str
    correlation_id: str
    start_time: int
    metadata: dict[str, Any] = field(default_factory=dict)
    breadcrumbs: tuple[Breadcrumb, ...] = ()
    parent_context: ErrorContext | None = None
    clock: Clock = field(default=_DEFAULT_CLOCK, repr=False, compare=False)
    #: Where :meth:`with_context` reports (None: the default app's telemetry).
    telemetry: MetricsSink | None = field(default=None, repr=False, compare=False)

    @classmethod
    def new(cls, module: str, function: str, *, correlation_id: str | None = None,
            metadata: Mapping[str, Any] | None = None, parent_context: ErrorContext | None = None,
            clock: Clock | None = None, telemetry: MetricsSink | None = None) -> ErrorContext:
        """A context with one breadcrumb and a fresh UUID correlation id unless given. ``clock`` and
        ``telemetry`` default to the parent's (else the system clock and the default app's telemetry)."""
        clk = clock or (parent_context.clock if parent_context else _DEFAULT_CLOCK)
        sink = telemetry or (parent_context.telemetry if parent_context else None)
        now = clk.monotonic_ms()
        return cls(operation_id=Utils.generate_id(), module=module, function=function,
                   correlation_id=correlation_id or Utils.generate_correlation_id(), start_time=now,
                   metadata=dict(metadata or {}),
                   breadcrumbs=(Breadcrumb(module, function, now, {}),),
                   parent_context=parent_context, clock=clk, telemetry=sink)

    @classmethod
    def child_context(cls, parent: ErrorContext, module: str, function: str,
                      metadata: Mapping[str, Any] | None = None) -> ErrorContext:
        """A child: inherits the correlation id, merges metadata, continues the breadcrumb trail."""
        now = parent.clock.monotonic_ms()
        return cls(operation_id=Utils.generate_id(), module=module, function=function,
                   correlation_id=parent.correlation_id, start_time=now,
                   metadata={**parent.metadata, **(metadata or {})},
                   breadcrumbs=(*parent.breadcrumbs, Breadcrumb(module, function, now, dict(metadata or {}))),
                   parent_context=parent, clock=parent.clock, telemetry=parent.telemetry)

    def add_breadcrumb(self, module: str, function: str, metadata: Mapping[str, Any] | None = None) -> ErrorContext:
        """A copy with one more breadcrumb."""
        crumb = Breadcrumb(module, function, self.clock.monotonic_ms(), dict(metadata or {}))
        return replace(self, breadcrumbs=(*self.breadcrumbs, crumb))

    def add_metadata(self, metadata: Mapping[str, Any]) -> ErrorContext:
        """A copy with ``metadata`` merged in."""
        return replace(self, metadata={**self.metadata, **metadata})

    def get_operation_duration(self) -> int:
        """Milliseconds since ``start_time``."""
        return self.clock.monotonic_ms() - self.start_time

    def format_breadcrumbs(self) -> str:
        """``"Mod.fun (1.2ms ago) -> Mod.other (0.4ms ago)"``."""
        now = self.clock.monotonic_ms()
        return " -> ".join(f"{b.module}.{b.function} ({Utils.format_duration((now - b.timestamp) * 1_000_000)} ago)"
                           for b in self.breadcrumbs)

    def _operation_context(self) -> dict[str, Any]:
        return {"operation_id": self.operation_id, "correlation_id": self.correlation_id,
                "breadcrumbs": [{"module": b.module, "function": b.function, "timestamp": b.timestamp,
                                 "metadata": b.metadata} for b in self.breadcrumbs],
                "duration_ns": self.get_operation_duration() * 1_000_000, "metadata": dict(self.metadata)}

    @staticmethod
    def get_current_context() -> ErrorContext | None:
        """The context set by the innermost :meth:`with_context` / :meth:`scope` in this thread or task."""
        return _CURRENT.get()

    @staticmethod
    @contextlib.contextmanager
    def scope(ctx: ErrorContext) -> Iterator[ErrorContext]:
        """Make ``ctx`` current for the ``with`` block (no error conversion)."""
        token = _CURRENT.set(ctx)
        try:
            yield ctx
        finally:
            _CURRENT.reset(token)

    @staticmethod
    def with_context(ctx: ErrorContext, fn: Callable[[], T]) -> T:
        """Run ``fn`` with ``ctx`` current; return its result and emit the operation-duration gauge (on
        ``ctx.telemetry``, else the default app's).

        Raises:
            FoundationError: ``internal_error`` (2401) when ``fn`` raises anything but a FoundationError,
                whose context has ``exception_type``, ``exception_message`` and ``operation_context``;
                a FoundationError from ``fn`` is re-raised enhanced with the operation context.
        """
        with ErrorContext.scope(ctx):
            try:
                result = fn()
            except FoundationError as exc:
                raise exception_for(ErrorContext.enhance_error(exc.error, ctx)) from exc
            except Exception as exc:
                err = Error.new("internal_error", f"Operation failed: {exc}", correlation_id=ctx.correlation_id,
                                stacktrace=exc,
                                context={"exception_type": type(exc).__name__, "exception_message": str(exc),
                                         "operation_context": ctx._operation_context()})
                err.collect_error_metrics(ctx.telemetry)
                raise exception_for(err) from exc
        (ctx.telemetry or default_sink()).emit_gauge(("foundation", "operations", "duration"),
                                                     ctx.get_operation_duration(),
                                                     {"module": ctx.module, "function": ctx.function})
        return result

    @staticmethod
    def enhance_error(error: Any, ctx: ErrorContext) -> Error:
        """``error`` (an Error, a FoundationError, ``("error", x)`` or any reason) with the operation context
        merged in; a raw reason becomes ``external_error`` (9999) with ``original_reason``."""
        if isinstance(error, FoundationError):
            error = error.error
        if isinstance(error, tuple) and len(error) == 2 and error[0] == "error":
            error = error[1]
        if isinstance(error, Error):
            return replace(error, correlation_id=error.correlation_id or ctx.correlation_id,
                           context={**error.context, "operation_context": ctx._operation_context()})
        return Error.new("external_error", f"External error: {Utils.safe_inspect(error)}",
                         correlation_id=ctx.correlation_id,
                         context={"original_reason": error, "operation_context": ctx._operation_context()})

    @staticmethod
    def add_context(result: Any, ctx: ErrorContext | Mapping[str, Any],
                    extra: Mapping[str, Any] | None = None) -> Any:
        """Leave ``"ok"``/``("ok", x)``/plain values alone; for ``("error", Error)`` return the error with
        the context (an ErrorContext or a plain mapping) and ``extra`` merged into its context."""
        if not (isinstance(result, tuple) and len(result) == 2 and result[0] == "error"):
            return result
        err = result[1]
        if not isinstance(err, Error):
            if isinstance(ctx, ErrorContext):
                return ("error", ErrorContext.enhance_error(err, ctx))
            return result
        added = ctx._operation_context() if isinstance(ctx, ErrorContext) else dict(ctx)
        return ("error", replace(err, context={**err.context, **added, **(extra or {})}))
