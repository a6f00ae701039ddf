"""Upcasters: old event shapes into current ones, keyed by tag and format version.

A log frame (or stream entry) carries the format version it was written with. Decoding goes through
:func:`upcast` first, which rewrites the raw builtins of older versions into today's shape. Format version 1 is the
current (and first) one, so the table is empty; the mechanism and its test exist so that the first breaking change
is a data change, not a code change. Never delete an upcaster while a golden log still uses its input.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from events import codec, schema

# (from_version, tag) -> function on the event's builtins returning the next version's builtins
UPCASTERS: dict[tuple[int, str], Callable[[dict], dict]] = {}


def upcast(raw: dict, version: int) -> dict:
    """Bring ``raw`` (an event as builtins) from ``version`` to :data:`codec.FORMAT_VERSION`."""
    if version > codec.FORMAT_VERSION:
        raise codec.DecodeError(f"format version {version} is newer than this reader ({codec.FORMAT_VERSION})")
    if version < 1:
        raise codec.DecodeError(f"invalid format version {version}")
    while version < codec.FORMAT_VERSION:
        tag = raw.get("kind") if isinstance(raw, dict) else None
        step = UPCASTERS.get((version, str(tag)))
        if step is not None:
            raw = step(raw)
        version += 1
    return raw


def decode_versioned(data: bytes, version: int) -> schema.Event:
    """Decode msgpack ``data`` written with ``version``; upcasts when it is older than the current format."""
    if version == codec.FORMAT_VERSION:
        return codec.decode(data)
    try:
        raw = msgspec.msgpack.decode(data)
    except msgspec.DecodeError as exc:
        raise codec.DecodeError(f"invalid event: {exc}") from None
    return codec.from_builtins(upcast(raw, version))
