"""Positions in an event log: Redis stream IDs (``<ms>-<seq>``), totally ordered.

Log files and the in-memory log use ``0-N`` (N = 1-based record number), so every adapter speaks one type.
"""

from __future__ import annotations


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

    # comparisons written out (not functools.total_ordering's derived ones): the fold compares every entry's
    # position with the replica's
    def __eq__(self, other: object) -> bool:
        return type(other) is Position and self.ms == other.ms and self.seq == other.seq

    def __lt__(self, other: Position) -> bool:
        return self.ms < other.ms or (self.ms == other.ms and self.seq < other.seq)

    def __le__(self, other: Position) -> bool:
        return self.ms < other.ms or (self.ms == other.ms and self.seq <= other.seq)

    def __gt__(self, other: Position) -> bool:
        return self.ms > other.ms or (self.ms == other.ms and self.seq > other.seq)

    def __ge__(self, other: Position) -> bool:
        return self.ms > other.ms or (self.ms == other.ms and self.seq >= other.seq)

    def __hash__(self) -> int:
        return hash((self.ms, self.seq))


ZERO = Position(0, 0)
