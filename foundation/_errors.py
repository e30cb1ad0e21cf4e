"""Errors: the 1.x ``Error`` record, its code table and retry rules, and the ``FoundationError`` tree.

1.x returns ``{:error, %Error{}}``; here every failure raises :class:`FoundationError` (or a subclass chosen
by the error's ``error_type``, else by its ``category``) whose ``.error`` is the :class:`Error`. The codes,
severities, categories and retry strategies follow 1.x exactly (reference §1.5). 1.x had two structs with
the same fields (``Foundation.Error`` for the table-driven helper and ``Foundation.Types.Error`` built by the
services with explicit codes); here they are one class: :meth:`Error.new` looks the type up in the table,
:meth:`Error.build` takes explicit service codes.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, NoReturn, ParamSpec, TypeVar

from foundation._ports import MetricsSink, default_sink

__all__ = [
    "AlreadyExists",
    "AlreadyRegistered",
    "CheckoutTimeout",
    "CircuitBreakerBlown",
    "CircuitBreakerNotFound",
    "ConfigError",
    "ConfigPathNotFound",
    "ConfigUpdateForbidden",
    "DataError",
    "Error",
    "EventNotFound",
    "ExternalError",
    "FoundationError",
    "FoundationTypeError",
    "FoundationValueError",
    "HealthCheckFailed",
    "MaxAttemptsExceeded",
    "PoolAlreadyExists",
    "PoolNotFound",
    "ProtectedOperationFailed",
    "RateLimitExceeded",
    "Result",
    "SecurityViolation",
    "ServiceNotFound",
    "ServiceTimeout",
    "ServiceUnavailable",
    "SystemServiceError",
    "ValidationFailed",
    "as_result",
    "raise_error",
]

Severity = Literal["low", "medium", "high", "critical"]
RetryStrategy = Literal["no_retry", "immediate", "fixed_delay", "exponential_backoff"]
Result = tuple[Literal["ok"], Any] | tuple[Literal["error"], "Error"]

# (category, subcategory, error_type) -> (code, severity, default message). Order and values from
# lib/foundation/error.ex at 0.1.5; the numbers are part of the 1.x contract.
_TABLE: dict[str, tuple[str, str, int, Severity, str]] = {}


def _define(category: str, subcategory: str, rows: list[tuple[str, int, Severity, str]]) -> None:
    for error_type, code, severity, message in rows:
        _TABLE[error_type] = (category, subcategory, code, severity, message)


_define("config", "structure", [
    ("invalid_config_structure", 1101, "high", "Configuration structure is invalid"),
    ("missing_required_field", 1102, "high", "Required configuration field is missing"),
])
_define("config", "validation", [
    ("invalid_config_value", 1201, "medium", "Configuration value is invalid"),
    ("constraint_violation", 1202, "medium", "Configuration constraint violated"),
    ("range_error", 1203, "low", "Value is outside allowed range"),
])
_define("config", "access", [("config_not_found", 1301, "high", "Configuration not found")])
_define("config", "runtime", [("config_update_forbidden", 1401, "medium", "Configuration update not allowed")])
_define("system", "initialization", [
    ("initialization_failed", 2101, "critical", "System initialization failed"),
    ("service_unavailable", 2102, "high", "Required service is unavailable"),
])
_define("system", "resources", [("resource_exhausted", 2201, "high", "System resources exhausted")])
_define("system", "dependencies", [("dependency_failed", 2301, "high", "Required dependency failed")])
_define("system", "runtime", [("internal_error", 2401, "critical", "Internal system error")])
_define("data", "serialization", [
    ("serialization_failed", 3101, "medium", "Data serialization failed"),
    ("deserialization_failed", 3102, "medium", "Data deserialization failed"),
])
_define("data", "validation", [
    ("type_mismatch", 3201, "low", "Data type mismatch"),
    ("format_error", 3202, "low", "Data format error"),
    ("validation_failed", 3203, "medium", "Data validation failed"),
    ("invalid_input", 3204, "low", "Invalid input provided"),
])
_define("data", "corruption", [("data_corruption", 3301, "critical", "Data corruption detected")])
_define("data", "not_found", [("data_not_found", 3401, "low", "Requested data not found")])
_define("external", "network", [("network_error", 4101, "medium", "Network communication error")])
_define("external", "service", [("external_service_error", 4201, "medium", "External service error")])
_define("external", "timeout", [("timeout", 4301, "medium", "Operation timed out")])
_define("external", "auth", [("authentication_failed", 4401, "high", "Authentication failed")])

_RECOVERY: dict[str, list[str]] = {
    "config_not_found": ["Check configuration file", "Verify configuration path"],
    "invalid_config_value": ["Check configuration format", "Validate against schema", "Review documentation"],
    "service_unavailable": ["Check service health", "Verify network connectivity", "Review service logs"],
    "resource_exhausted": ["Check memory usage", "Review resource limits", "Scale resources if needed"],
    "network_error": ["Check network connectivity", "Retry with exponential backoff"],
    "timeout": ["Increase timeout value", "Check network latency", "Review service performance"],
    "data_corruption": ["Restore from backup", "Contact system administrator"],
}
_DEFAULT_RECOVERY = ["Check logs for details", "Review error context", "Contact support if needed"]


def retry_strategy_for(error_type: str, severity: str) -> RetryStrategy:
    """The 1.x retry rule, first match wins (timeout/network -> exponential, external -> fixed, ...)."""
    if error_type in ("timeout", "network_error"):
        return "exponential_backoff"
    if error_type == "external_service_error":
        return "fixed_delay"
    if severity == "critical":
        return "no_retry"
    if severity == "high":
        return "immediate"
    if error_type in ("invalid_config_value", "data_corruption"):
        return "no_retry"
    if error_type == "resource_exhausted":
        return "immediate"
    return "fixed_delay"


def _format_stacktrace(stacktrace: Any) -> list[dict[str, Any]] | None:
    """Up to 10 frames as ``{module, function, arity, file, line}`` from a traceback, exception or list."""
    if stacktrace is None:
        return None
    if isinstance(stacktrace, BaseException):
        stacktrace = stacktrace.__traceback__
    if isinstance(stacktrace, TracebackType):
        frames = traceback.extract_tb(stacktrace)
        return [
            {"module": None, "function": f.name, "arity": None, "file": f.filename, "line": f.lineno}
            for f in list(frames)[-10:]
        ]
    if isinstance(stacktrace, list):
        return [dict(f) if isinstance(f, Mapping) else {"frame": repr(f)} for f in stacktrace[:10]]
    raise type_error("stacktrace must be a traceback, an exception, a list of frames or None")


@dataclass(frozen=True, slots=True)
class Error:
    """A Foundation error record (1.x ``Foundation.Error`` / ``Foundation.Types.Error``).

    Immutable; ``context`` is a plain dict that callers should treat as read-only. Construct with
    :meth:`new` (table lookup: code, severity, category from ``error_type``) or :meth:`build` (explicit
    service codes such as 1000 ``security_violation`` or 3001 ``not_found``).
    """

    code: int | None
    error_type: str
    message: str
    severity: Severity = "medium"
    context: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    stacktrace: list[dict[str, Any]] | None = None
    category: str = "unknown"
    subcategory: str = "unknown"
    retry_strategy: RetryStrategy = "fixed_delay"
    recovery_actions: list[str] = field(default_factory=list)

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def new(
        cls,
        error_type: str,
        message: str | None = None,
        *,
        context: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        stacktrace: Any = None,
    ) -> Error:
        """Build an error from the 1.x table. Unknown types get code 9999, medium, category ``unknown``.

        Raises:
            FoundationTypeError: ``error_type`` is not a string.
        """
        if not isinstance(error_type, str):
            raise type_error("error_type must be a str")
        category, subcategory, code, severity, default = _TABLE.get(
            error_type, ("unknown", "unknown", 9999, "medium", "Unknown error")
        )
        ctx = dict(context or {})
        actions = list(_RECOVERY.get(error_type, _DEFAULT_RECOVERY))
        if "operation" in ctx:
            actions.append(f"Review {ctx['operation']} implementation")
        return cls(
            code=code,
            error_type=error_type,
            message=message if message is not None else default,
            severity=severity,
            context=ctx,
            correlation_id=correlation_id,
            stacktrace=_format_stacktrace(stacktrace),
            category=category,
            subcategory=subcategory,
            retry_strategy=retry_strategy_for(error_type, severity),
            recovery_actions=actions,
        )

    @classmethod
    def build(
        cls,
        code: int | None,
        error_type: str,
        message: str,
        *,
        category: str,
        subcategory: str,
        severity: Severity = "medium",
        context: Mapping[str, Any] | None = None,
        retry_strategy: RetryStrategy | None = None,
        correlation_id: str | None = None,
        stacktrace: Any = None,
    ) -> Error:
        """Build a service error with an explicit code (1.x ``Types.Error.new``).

        When ``retry_strategy`` is omitted it follows the same rule as :meth:`new`, so every error has a
        usable strategy (1.x left it ``nil`` on service errors).
        """
        return cls(
            code=code,
            error_type=error_type,
            message=message,
            severity=severity,
            context=dict(context or {}),
            correlation_id=correlation_id,
            stacktrace=_format_stacktrace(stacktrace),
            category=category,
            subcategory=subcategory,
            retry_strategy=retry_strategy or retry_strategy_for(error_type, severity),
            recovery_actions=list(_RECOVERY.get(error_type, _DEFAULT_RECOVERY)),
        )

    @classmethod
    def error_result(
        cls, error_type: str, message: str | None = None, **opts: Any
    ) -> tuple[Literal["error"], Error]:
        """``("error", Error.new(...))``, the 1.x ``error_result/3`` tuple (for :func:`as_result` style code)."""
        return ("error", cls.new(error_type, message, **opts))

    @classmethod
    def wrap_error(
        cls,
        result: Any,
        error_type: str,
        message: str | None = None,
        *,
        context: Mapping[str, Any] | None = None,
    ) -> Any:
        """Chain or wrap an error result (1.x ``wrap_error/4``).

        * ``("error", Error)`` or a :class:`FoundationError`: the same error with ``wrapped_by``,
          ``wrapper_message`` and ``wrapper_context`` merged into its context, as ``("error", Error)``.
        * ``("error", reason)`` or any other exception: a new error of ``error_type`` whose context holds
          ``original_reason``.
        * anything else passes through unchanged.
        """
        ctx = dict(context or {})
        existing: Error | None = None
        reason: Any = None
        if isinstance(result, FoundationError):
            existing = result.error
        elif isinstance(result, BaseException):
            reason = result
        elif isinstance(result, tuple) and len(result) == 2 and result[0] == "error":
            if isinstance(result[1], Error):
                existing = result[1]
            else:
                reason = result[1]
        else:
            return result
        if existing is not None:
            merged = {**existing.context, "wrapped_by": error_type, "wrapper_message": message,
                      "wrapper_context": ctx}
            return ("error", replace(existing, context=merged))
        return cls.error_result(error_type, message, context={**ctx, "original_reason": reason})

    # -- analysis ---------------------------------------------------------------------------------

    def is_retryable(self) -> bool:
        """True unless the retry strategy is ``no_retry``."""
        return self.retry_strategy != "no_retry"

    def retry_delay(self, attempt: int) -> float:
        """Milliseconds to wait before retry ``attempt`` (1.x rule).

        exponential: ``round(min(1000 * 2**attempt, 30_000))``; fixed: 1000; immediate: 0;
        no_retry: ``math.inf`` (1.x ``:infinity``).

        Raises:
            FoundationTypeError: ``attempt`` is not an int.
        """
        if not isinstance(attempt, int) or isinstance(attempt, bool):
            raise type_error("attempt must be an int")
        if self.retry_strategy == "exponential_backoff":
            # Cap the exponent first so huge attempts never build huge floats (2**15 * 1000 > 30_000).
            return round(min(1000 * 2.0 ** min(attempt, 15), 30_000))
        if self.retry_strategy == "fixed_delay":
            return 1000
        if self.retry_strategy == "immediate":
            return 0
        return math.inf

    def should_escalate(self) -> bool:
        """True for severity ``high`` or ``critical``."""
        return self.severity in ("high", "critical")

    def __str__(self) -> str:
        base = f"[{self.code}:{self.error_type}] {self.message}"
        ctx = f" | Context: {_short_repr(self.context)}" if self.context else ""
        return f"{base}{ctx} | Severity: {self.severity}"

    def to_string(self) -> str:
        """``"[code:type] message | Context: ... | Severity: s"`` (1.x ``to_string/1``)."""
        return str(self)

    def collect_error_metrics(self, telemetry: MetricsSink | None = None) -> None:
        """Emit counter ``("foundation", "errors", category, subcategory)`` on ``telemetry`` (an app's
        Telemetry service; default: the default app's, created on first use)."""
        (telemetry or default_sink()).emit_counter(
            ("foundation", "errors", self.category, self.subcategory),
            {"error_type": self.error_type, "severity": self.severity, "code": self.code},
        )


def _short_repr(ctx: Mapping[str, Any]) -> str:
    items = list(ctx.items())
    shown = ", ".join(f"{k!r}: {v!r}"[:200] for k, v in items[:3])
    return "{" + shown + (", ..." if len(items) > 3 else "") + "}"


# -- the exception tree ---------------------------------------------------------------------------


class FoundationError(Exception):
    """Root of every Foundation failure. ``.error`` is the :class:`Error` record (code, type, severity...)."""

    def __init__(self, error: Error) -> None:
        super().__init__(str(error))
        self.error = error

    @property
    def error_type(self) -> str:
        """Shortcut for ``self.error.error_type``."""
        return self.error.error_type

    @property
    def code(self) -> int | None:
        """Shortcut for ``self.error.code``."""
        return self.error.code


class ConfigError(FoundationError):
    """An error with category ``config``."""


class DataError(FoundationError):
    """An error with category ``data``."""


class SystemServiceError(FoundationError):
    """An error with category ``system`` (availability, discovery, infrastructure)."""


class ExternalError(FoundationError):
    """An error with category ``external`` (network, timeouts, external services)."""


class SecurityViolation(FoundationError):
    """An error with category ``security`` (1000/1005 path and value checks)."""


class FoundationTypeError(FoundationError, TypeError):
    """A wrong argument type (1.x raised FunctionClauseError). Also a :class:`TypeError`."""


class FoundationValueError(FoundationError, ValueError):
    """A wrong argument value (1.x raised ArgumentError). Also a :class:`ValueError`."""


class ConfigPathNotFound(ConfigError):
    """``config_path_not_found``: the path does not exist in the configuration."""


class ConfigUpdateForbidden(ConfigError):
    """``config_update_forbidden`` (1401): the path is not in ``updatable_paths()``."""


class ValidationFailed(FoundationError):
    """A validation failure (config 1001-1004, events 2001-2003)."""


class EventNotFound(DataError):
    """``not_found`` (3001): no event with that id."""


class ServiceUnavailable(SystemServiceError):
    """``service_unavailable``: the service is stopped (3000 events, 5000 config)."""


class ServiceNotFound(SystemServiceError):
    """``service_not_found`` (5001): nothing registered under that namespace/name."""


class AlreadyRegistered(SystemServiceError):
    """``already_registered``: another live object holds the name. ``.existing`` is that object."""

    @property
    def existing(self) -> Any:
        """The object currently registered."""
        return self.error.context.get("existing")


class HealthCheckFailed(SystemServiceError):
    """A health check did not pass; ``.reason`` is the 1.x reason term."""

    @property
    def reason(self) -> Any:
        """``"process_dead"``, ``"health_check_timeout"``, ``("health_check_failed", v)``, ..."""
        return self.error.context.get("reason")


class ServiceTimeout(ExternalError):
    """``timeout``: waiting for a service or a checkout took too long."""


class MaxAttemptsExceeded(FoundationError):
    """``max_attempts_exceeded``: :func:`Utils.retry` gave up; ``.error.context['last_error']`` holds why."""


class CircuitBreakerBlown(SystemServiceError):
    """``circuit_breaker_blown`` (5004): the fuse is blown; retry after its refresh time."""


class CircuitBreakerNotFound(SystemServiceError):
    """``circuit_breaker_not_found`` (5005 execute, 5007 status, 5013 reset)."""


class ProtectedOperationFailed(SystemServiceError):
    """``protected_operation_failed`` (5003): the protected function raised (it melted the fuse)."""


class RateLimitExceeded(SystemServiceError):
    """``rate_limit_exceeded`` (6001): the fixed window is full; retry strategy ``fixed_delay``."""


class PoolNotFound(SystemServiceError):
    """``pool_not_found``: no pool with that name."""


class AlreadyExists(SystemServiceError):
    """``already_exists``: a pool or circuit breaker with that name exists."""


PoolAlreadyExists = AlreadyExists


class CheckoutTimeout(ServiceTimeout):
    """``checkout_timeout``: no worker became free within the timeout."""


_BY_TYPE: dict[str, type[FoundationError]] = {
    "config_path_not_found": ConfigPathNotFound,
    "config_update_forbidden": ConfigUpdateForbidden,
    "validation_failed": ValidationFailed,
    "invalid_config_value": ValidationFailed,
    "constraint_violation": ValidationFailed,
    "range_error": ValidationFailed,
    "type_mismatch": ValidationFailed,
    "data_too_large": ValidationFailed,
    "security_violation": SecurityViolation,
    "not_found": EventNotFound,
    "service_unavailable": ServiceUnavailable,
    "service_not_found": ServiceNotFound,
    "already_registered": AlreadyRegistered,
    "health_check_failed": HealthCheckFailed,
    "timeout": ServiceTimeout,
    "max_attempts_exceeded": MaxAttemptsExceeded,
    "circuit_breaker_blown": CircuitBreakerBlown,
    "circuit_breaker_not_found": CircuitBreakerNotFound,
    "protected_operation_failed": ProtectedOperationFailed,
    "rate_limit_exceeded": RateLimitExceeded,
    "pool_not_found": PoolNotFound,
    "already_exists": AlreadyExists,
    "checkout_timeout": CheckoutTimeout,
}
_BY_CATEGORY: dict[str, type[FoundationError]] = {
    "config": ConfigError,
    "data": DataError,
    "system": SystemServiceError,
    "external": ExternalError,
    "security": SecurityViolation,
}


def exception_for(error: Error) -> FoundationError:
    """The exception instance for ``error``: specific class by type, else by category, else the root."""
    cls = _BY_TYPE.get(error.error_type) or _BY_CATEGORY.get(error.category, FoundationError)
    return cls(error)


def raise_error(error: Error, cause: BaseException | None = None) -> NoReturn:
    """Raise the exception for ``error`` (chained to ``cause``). Never returns."""
    raise exception_for(error) from cause


def type_error(message: str, **context: Any) -> FoundationTypeError:
    """A :class:`FoundationTypeError` carrying an ``invalid_input`` (3204) error."""
    return FoundationTypeError(Error.new("invalid_input", message, context=context))


def value_error(message: str, **context: Any) -> FoundationValueError:
    """A :class:`FoundationValueError` carrying an ``invalid_input`` (3204) error."""
    return FoundationValueError(Error.new("invalid_input", message, context=context))


P = ParamSpec("P")
T = TypeVar("T")


def as_result(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Result:
    """Call ``fn`` and return ``("ok", value)`` or ``("error", Error)`` for a :class:`FoundationError`.

    Lets 1.x-style code (and ported Elixir tests) match on tuples. Other exceptions propagate.
    """
    try:
        return ("ok", fn(*args, **kwargs))
    except FoundationError as exc:
        return ("error", exc.error)
