"""Positions in an event log: Redis stream IDs (``<ms>-<seq>``), totally ordered.

Log files and the in-memory log use ``0-N`` (N = 1-based record number), so every adapter speaks one type.
"""

from __future__ import annotations

import functools


@functools.total_ordering
class Position:
    __slots__ = ("ms", "seq")

    def __init__(self, ms: int, seq: int) -> None:
        if ms < 0 or seq < 0:
            raise ValueError("position parts must be non-negative")
        self.ms = ms
        self.seq = seq

    @classmethod
    def parse(cls, text: str | bytes) -> Position:
        if isinstance(text, bytes):
            text = text.decode("ascii")
        ms, sep, seq = text.partition("-")
        if not sep or not ms.isdigit() or not seq.isdigit():
            raise ValueError(f"invalid stream position {text!r}")
        return cls(int(ms), int(seq))

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"

    def __repr__(self) -> str:
        return f"Position({self.ms}, {self.seq})"

    def _key(self) -> tuple[int, int]:
        return (self.ms, self.seq)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Position) and self._key() == other._key()

    def __lt__(self, other: Position) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())


ZERO = Position(0, 0)
