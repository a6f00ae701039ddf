"""Garbage-collector policy for the moments the process builds millions of long-lived objects at once (a replay, a
snapshot load and the first plan of a speaker or a new leader).

CPython's cyclic collector runs a young-generation pass every 700 net allocations and promotes survivors; while a
large state is being built nearly every object survives, so the passes only rescan what they cannot free, and the
older-generation passes they trigger walk the whole state again. :func:`few_collections` raises the young
threshold for the duration (cycles are still collected) and restores it afterwards. It changes no decision: the
core never depends on when objects are freed.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def few_collections(threshold: int = 100_000) -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], threshold), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
