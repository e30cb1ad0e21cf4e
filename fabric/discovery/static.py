"""The ``static`` strategy: a fixed list of seed endpoints from configuration or the command line.

It never talks to a backend, so it never fails; its answer is the configured list minus this node.
Use it for fixed clusters, for tests, and as the always-available second strategy in ``multi``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from .base import (
    DEFAULT_MEMBERSHIP_PORT,
    Candidate,
    ConfigurationError,
    DiscoveryPlugin,
    LocalNode,
    check_port,
    format_tcp_endpoint,
    parse_tcp_endpoint,
)

__all__ = ["StaticConfig", "StaticPlugin", "normalize_seed"]


def normalize_seed(text: str, default_port: int = DEFAULT_MEMBERSHIP_PORT) -> str:
    """Turn ``host``, ``host:port``, ``[v6]:port`` or a full endpoint into a membership endpoint.

    ``ipc://`` and ``inproc://`` endpoints pass through unchanged (single-host clusters).
    Raises :class:`ConfigurationError` for anything else.
    """
    text = text.strip()
    if text.startswith(("ipc://", "inproc://")):
        if len(text.split("://", 1)[1]) == 0:
            raise ConfigurationError(f"empty endpoint path in seed {text!r}")
        return text
    if text.startswith("tcp://"):
        host, port = parse_tcp_endpoint(text)
        return format_tcp_endpoint(host, port)
    if "://" in text:
        raise ConfigurationError(f"unsupported scheme in seed {text!r}")
    if not text:
        raise ConfigurationError("empty seed")
    if text.startswith("["):  # [v6] or [v6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ConfigurationError(f"bad seed {text!r}")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:  # a bare name, IPv4 or (unbracketed) IPv6 literal
        host, port_text = text, ""
    if not host:
        raise ConfigurationError(f"seed without host: {text!r}")
    if port_text and not port_text.isdigit():
        raise ConfigurationError(f"bad port in seed {text!r}")
    port = int(port_text) if port_text else default_port
    check_port(port, f"port of seed {text!r}")
    return format_tcp_endpoint(host, port)


@dataclasses.dataclass(frozen=True)
class StaticConfig:
    """Configuration of the ``static`` strategy.

    Attributes:
        seeds: membership endpoints of the peers to try. Each is ``tcp://host:port``, ``host:port``,
            ``[v6]:port``, a bare ``host`` (then ``default_port`` applies) or an ``ipc://``/``inproc://``
            endpoint. Normalized to full endpoints on construction; duplicates removed, order kept.
        default_port: membership port for seeds given without one (the cluster's port base).
    """

    seeds: tuple[str, ...] = ()
    default_port: int = DEFAULT_MEMBERSHIP_PORT

    def __post_init__(self) -> None:
        check_port(self.default_port, "StaticConfig.default_port")
        if isinstance(self.seeds, str):
            raise ConfigurationError("StaticConfig.seeds must be a sequence of strings, not one string")
        normalized: list[str] = []
        for seed in self.seeds:
            if not isinstance(seed, str):
                raise ConfigurationError(f"StaticConfig.seeds holds a non-string: {seed!r}")
            endpoint = normalize_seed(seed, self.default_port)
            if endpoint not in normalized:
                normalized.append(endpoint)
        object.__setattr__(self, "seeds", tuple(normalized))


class StaticPlugin(DiscoveryPlugin):
    """Candidates from a fixed list. Never fails; never announces."""

    name: ClassVar[str] = "static"
    config_type: ClassVar[type[StaticConfig]] = StaticConfig
    config: StaticConfig

    async def _start(self, local: LocalNode) -> None:
        self._candidates = [
            c for c in (Candidate(seed=s, source=self.name) for s in self.config.seeds) if not self._is_self(c)
        ]
        self._mark_success()

    async def _lookup(self) -> list[Candidate]:
        self._mark_success()
        return list(self._candidates)

    async def _stop(self) -> None:
        self._candidates = []

    def default_poll_interval(self) -> float:
        """A static list never changes; watch() wakes once a minute only to notice stop()."""
        return 60.0
