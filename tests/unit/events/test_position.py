"""Stream positions: parse, format, order."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from events.position import ZERO, Position

parts = st.integers(0, 2**64 - 1)


@given(parts, parts)
def test_round_trip(ms: int, seq: int) -> None:
    p = Position(ms, seq)
    assert Position.parse(str(p)) == p
    assert Position.parse(str(p).encode()) == p


small = st.integers(0, 3)  # equal parts are common, so every branch of each comparison is taken


@given(st.one_of(parts, small), st.one_of(parts, small), st.one_of(parts, small), st.one_of(parts, small))
def test_order_is_numeric_not_textual(a: int, b: int, c: int, d: int) -> None:
    p, q = Position(a, b), Position(c, d)
    assert (p < q) == ((a, b) < (c, d))
    assert (p <= q) == ((a, b) <= (c, d))
    assert (p > q) == ((a, b) > (c, d))
    assert (p >= q) == ((a, b) >= (c, d))
    assert (p == q) == ((a, b) == (c, d)) and (p != q) == ((a, b) != (c, d))
    assert (hash(p) == hash(q)) or p != q
    assert sorted([q, p]) == [Position(*t) for t in sorted([(a, b), (c, d)])]


def test_zero_is_smallest() -> None:
    assert ZERO < Position(0, 1) < Position(1, 0)
    assert Position(10, 0) > Position(9, 99)  # "10-0" sorts before "9-99" as text


@pytest.mark.parametrize("bad", ["", "5", "a-b", "1-", "-1", "1--2", "1-2-3", " 1-2"])
def test_bad_positions(bad: str) -> None:
    with pytest.raises(ValueError):
        Position.parse(bad)
