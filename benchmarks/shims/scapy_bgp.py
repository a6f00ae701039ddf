"""Baseline for bench_bgp: scapy's BGP layer (``scapy.contrib.bgp``) building 809-prefix UPDATEs.

Run as a program (scapy's BGP module configuration is process-wide): builds ``--updates`` UPDATEs of 809
IPv4 /32s with the 27 attribute bytes of the benchmark, checks that the bytes equal ``fastpath.bgp.pack_updates``
output, and prints ``{"prefixes_per_s": ..., "min_s": ...}`` as JSON.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import time

logging.getLogger("scapy").setLevel(logging.ERROR)
from scapy.contrib import bgp as scapy_bgp  # noqa: E402
from scapy.contrib.bgp import (  # noqa: E402
    BGPHeader, BGPNLRI_IPv4, BGPPAAS4BytesPath, BGPPACommunity, BGPPANextHop, BGPPAOrigin, BGPPathAttr, BGPUpdate,
)

scapy_bgp.bgp_module_conf.use_2_bytes_asn = False  # a NEW speaker (RFC 6793), as the benchmark's 4-octet AS_PATH

BASE = 0xC6120000


def build(ips: list[str]) -> bytes:
    attrs = [
        BGPPathAttr(type_flags=0x40, type_code=1, attribute=BGPPAOrigin(origin=0)),
        BGPPathAttr(type_flags=0x40, type_code=2, attribute=BGPPAAS4BytesPath(
            segments=[BGPPAAS4BytesPath.ASPathSegment(segment_type=2, segment_value=[64513])])),
        BGPPathAttr(type_flags=0x40, type_code=3, attribute=BGPPANextHop(next_hop="10.200.0.1")),
        BGPPathAttr(type_flags=0xC0, type_code=8, attribute=BGPPACommunity(community=64513 << 16 | 100)),
    ]
    return bytes(BGPHeader() / BGPUpdate(path_attr=attrs, nlri=[BGPNLRI_IPv4(prefix=f"{ip}/32") for ip in ips]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    n = 809 * a.updates
    ips = [str(ipaddress.IPv4Address(BASE + i)) for i in range(n)]
    chunks = [ips[k:k + 809] for k in range(0, n, 809)]
    from fastpath import bgp, model

    attrs = model.Attrs(as_path=model.as_sequence(64513), next_hop=0x0AC80001, communities=(64513 << 16 | 100,))
    assert [build(c) for c in chunks] == bgp.pack_updates([BASE + i for i in range(n)], attrs), "scapy disagrees"
    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        for c in chunks:
            build(c)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"prefixes": n, "min_s": min(times), "prefixes_per_s": n / min(times)}))


if __name__ == "__main__":
    main()
