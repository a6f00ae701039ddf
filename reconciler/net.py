"""Address arithmetic for the core: addresses as ``(family, int)``, pool entries as blocks of CIDRs.

Pure and deterministic; the only parser of address text inside the reconciler.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

V4, V6 = 4, 6


class Block(NamedTuple):
    """One CIDR of a pool entry: ``first``..``last`` inclusive, as integers of ``family``."""

    family: int
    first: int
    last: int
    prefixlen: int

    def contains(self, family: int, value: int) -> bool:
        return family == self.family and self.first <= value <= self.last

    def __str__(self) -> str:
        return f"{to_text(self.family, self.first)}/{self.prefixlen}"


_DOTTED = re.compile(r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}")


_OCTETS = {str(i): i for i in range(256)}  # the canonical text of each octet: no leading zero, ASCII digits


def parse_v4(text: str) -> int | None:
    """The value of a canonical dotted quad (what :data:`_DOTTED` matches), else None; four dictionary look-ups
    instead of a regular expression (a speaker's first plan and a snapshot load read 100,000s of them)."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    o = _OCTETS
    a, b, c, d = parts
    if a in o and b in o and c in o and d in o:
        return (o[a] << 24) | (o[b] << 16) | (o[c] << 8) | o[d]
    return None


def parse_ip(text: str) -> tuple[int, int]:
    """``(family, int)`` of an address. Raises ValueError. (A canonical dotted quad, the common case, is read
    without ``ipaddress``: same answer.)"""
    v = parse_v4(text)
    if v is not None:
        return V4, v
    if _DOTTED.fullmatch(text) is not None:
        a, b, c, d = text.split(".")
        return V4, (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)
    got = _PARSED.get(text)
    if got is not None:
        return got
    if "%" in text:
        raise ValueError(f"{text!r} has a zone index")
    addr = _ip_address(text.strip())
    got = addr.version, int(addr)
    _remember(_PARSED, text, got)
    return got



def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``ipaddress.ip_address(text)``; a text with a colon (IPv6 or nothing) skips the failing IPv4 attempt."""
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            pass
    return ipaddress.ip_address(text)


def family_of(text: str) -> int | None:
    """The family of an address text, or None when :func:`parse_ip` refuses it (same verdict, without the value)."""
    if _DOTTED.fullmatch(text) is not None:
        return V4
    try:
        return parse_ip(text)[0]
    except ValueError:
        return None


def to_text(family: int, value: int) -> str:
    if family == V4:
        return str(ipaddress.IPv4Address(value))
    got = _V6_TEXTS.get(value)
    if got is None:
        got = str(ipaddress.IPv6Address(value))
        _remember(_V6_TEXTS, value, got)
        _remember(_PARSED, got, (V6, value))  # the text reads back as the same address
    return got


# Memos of pure functions (IPv6 parsing and printing through ipaddress is slow; the replay of a dual-stack cluster
# meets each address several times), bounded: cleared when full.
_PARSED: dict[str, tuple[int, int]] = {}  # address text (not a canonical dotted quad) -> parse_ip's answer
_V6_TEXTS: dict[int, str] = {}  # IPv6 value -> canonical text
_MEMO_SIZE = 65_536


def _remember(memo: dict, key, value) -> None:
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = value


def canonical(text: str) -> str:
    return str(ipaddress.ip_address(text.strip()))


def parse_entry(entry: str) -> list[Block]:
    """A pool ``addresses`` entry (CIDR, host bits allowed and masked; or range ``A-B``) as ascending CIDR blocks.

    Raises ValueError with MetalLB's wording.
    """
    text = entry.strip()
    if "-" in text and "/" not in text:
        a, _, b = text.partition("-")
        try:
            start = ipaddress.ip_address(a.strip())
        except ValueError:
            raise ValueError(f"invalid IP range {entry!r}: invalid start IP {a.strip()!r}") from None
        try:
            end = ipaddress.ip_address(b.strip())
        except ValueError:
            raise ValueError(f"invalid IP range {entry!r}: invalid end IP {b.strip()!r}") from None
        if start.version != end.version:
            raise ValueError(f"invalid IP range {entry!r}: start and end are of different families")
        if start > end:
            raise ValueError(f"invalid IP range {entry!r}: start IP {start} is after the end IP {end}")
        nets = ipaddress.summarize_address_range(start, end)  # type: ignore[arg-type]
    else:
        try:
            nets = [ipaddress.ip_network(text, strict=False)]
        except ValueError:
            raise ValueError(f"invalid CIDR {entry!r}") from None
    return [Block(n.version, int(n.network_address), int(n.broadcast_address), n.prefixlen) for n in nets]


def is_buggy(family: int, value: int) -> bool:
    """MetalLB's avoidBuggyIPs: IPv4 addresses ending in .0 or .255 (in every /24)."""
    return family == V4 and (value & 0xFF) in (0, 255)


def block_capacity(block: Block, avoid_buggy: bool) -> int:
    """Usable addresses of a block (MetalLB's pool counting, §4.9)."""
    size = block.last - block.first + 1
    if not avoid_buggy or block.family != V4:
        return size
    if block.prefixlen <= 24:
        return size - 2 * (size // 256)
    return size - int(is_buggy(V4, block.first)) - int(is_buggy(V4, block.last) and block.last != block.first)
