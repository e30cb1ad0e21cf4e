"""Payload values: bytes travel raw, anything else as msgpack (never pickle)."""

from __future__ import annotations

import zlib
from typing import Any

from .wire import ContentType, packb, unpackb


def encode_value(value: Any) -> tuple[bytes, ContentType]:
    """Return ``(payload, content_type)``: bytes-like values are sent raw, others msgpack-encoded.

    Raises TypeError for a value msgpack cannot encode (the caller's error, reported at once).
    """
    if isinstance(value, bytes):
        return value, ContentType.RAW
    if isinstance(value, bytearray | memoryview):
        return bytes(value), ContentType.RAW
    try:
        return packb(value), ContentType.MSGPACK
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"payload of type {type(value).__name__} is neither bytes nor msgpack-serialisable: {exc}") from exc


def decode_value(payload: Any, content_type: int) -> Any:
    """Inverse of :func:`encode_value`. Raises fabric.errors.MalformedHeader for bad msgpack."""
    if content_type == ContentType.MSGPACK:
        return unpackb(payload)
    return payload


def lane_for(key: Any, lanes: int) -> int:
    """The lane a partition key maps to: stable across processes (crc32, not Python's salted hash).

    None maps to lane 0, so messages sent without a key stay ordered.
    """
    if lanes <= 1 or key is None:
        return 0
    if isinstance(key, int):
        return key % lanes
    if isinstance(key, str):
        key = key.encode()
    return zlib.crc32(key) % lanes
