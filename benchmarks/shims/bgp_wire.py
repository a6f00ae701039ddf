"""``bgp_wire`` for ``/work/shared/baselines/bgp_update_encode.py``: the decoding helpers its self-check imports
(from a ``tools/`` directory that is not shipped with the baselines), answered by streamlb's decoder.

So the baseline verifies its own output with an independent decoder before it is timed.
"""

from __future__ import annotations

import ipaddress

from fastpath import bgp


def decode_attrs(block: bytes, as4: bool = True):
    msg = b"\xff" * 16 + (23 + len(block)).to_bytes(2, "big") + b"\x02\x00\x00" + len(block).to_bytes(2, "big") + block
    attrs = bgp.decode(msg, as4=as4).attrs
    out = {
        "origin": {0: "igp", 1: "egp", 2: "incomplete"}[attrs.origin],
        "as_path": [a for seg in attrs.as_path for a in seg.asns],
        "next_hop": str(ipaddress.IPv4Address(attrs.next_hop)),
    }
    if attrs.communities:
        out["communities"] = [f"{c >> 16}:{c & 0xFFFF}" for c in attrs.communities]
    return out, None, None


def nlri_list(data: bytes) -> list[str]:
    # NLRI without attributes would be rejected (missing ORIGIN), so read them as withdrawn routes instead
    msg = b"\xff" * 16 + (23 + len(data)).to_bytes(2, "big") + b"\x02" + len(data).to_bytes(2, "big") + data + b"\x00\x00"
    return [f"{ipaddress.IPv4Address(a)}/{n}" for a, n in bgp.decode(msg, max_len=65535).withdrawn]
