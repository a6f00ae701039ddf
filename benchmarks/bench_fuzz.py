"""BGP decoder robustness at volume: mutated valid messages fed to ``fastpath.bgp.decode``.

What is measured: decodes per second over a seeded stream of mutations (bit flips, byte overwrites, truncation,
extension, insertion, deletion; the length field re-fixed half of the time so the body parsers are reached) of a
corpus of valid messages of every kind built by the encoders — OPENs, UPDATEs (IPv4/IPv6, 2- and 4-octet AS
paths, communities, large communities, MED, LOCAL_PREF), withdrawals, End-of-RIB, NOTIFICATION, ROUTE-REFRESH,
KEEPALIVE. The figure that matters is in the notes: how many inputs raised anything other than ``BgpError``
(must be 0). The baseline is the decode rate of the unmutated corpus.

``python -m benchmarks fuzz --n 1000000 [--seed S]`` runs the long campaign and exits 1 on the first input that
raises anything else, printing it in hex.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

NAME = "fuzz"


def corpus() -> list[tuple[bytes, bool]]:
    """Valid messages with the AS width (``as4``) they decode with."""
    from fastpath import bgp, model

    out = [(m, True) for m in (
        bgp.build_open(65002, 90, 0xB9ECF027), bgp.build_open(4200000000, 90, 1, model.full_capabilities(4200000000)),
        bgp.build_keepalive(), bgp.build_notification(6, 2, b"shutdown"), bgp.build_route_refresh(2, 1),
        bgp.build_end_of_rib(), bgp.build_end_of_rib(2, 1),
    )]
    rng = random.Random(1)
    for k in range(12):
        attrs = model.make_attrs(
            local_as=rng.choice([64512, 4200000000]), peer_as=rng.choice([64512, 65001]),
            next_hop=None if k % 3 == 2 else rng.randrange(2**32),
            communities=tuple(rng.randrange(2**32) for _ in range(k % 4)),
            large_communities=tuple((rng.randrange(2**32), 1, 2) for _ in range(k % 2)),
            local_pref=rng.choice([None, 200]), med=rng.choice([None, 5]), peer_4byte=k % 2 == 0,
        )
        as4 = k % 2 == 0
        if k % 3 == 2:
            pfx = [(rng.randrange(2**64) << 64, 64) for _ in range(1 + k)]
            out += [(m, as4) for m in bgp.pack_updates(pfx, attrs, afi=2, next_hop=rng.randrange(2**128), as4=as4)]
            out += [(m, True) for m in bgp.pack_withdrawals(pfx, afi=2)]
        else:
            pfx = [(rng.randrange(2**24) << 8, 24) for _ in range(1 + k)]
            out += [(m, as4) for m in bgp.pack_updates(pfx, attrs, as4=as4)]
            out += [(m, True) for m in bgp.pack_withdrawals(pfx)]
    return out


def _pos(rng: random.Random, n: int) -> int:
    # mostly past the 19-byte header, so the body parsers see most of the damage
    return rng.randrange(19, n) if n > 19 and rng.random() < 0.9 else rng.randrange(n)


def mutate(rng: random.Random, msg: bytes) -> bytes:
    buf = bytearray(msg)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        if op == 0 and buf:
            buf[_pos(rng, len(buf))] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[_pos(rng, len(buf))] = rng.randrange(256)
        elif op == 2 and buf:
            del buf[_pos(rng, len(buf)):]
        elif op == 3:
            buf += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 4:
            i = _pos(rng, len(buf) + 1)
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif buf:
            i = _pos(rng, len(buf))
            del buf[i:i + rng.randint(1, 4)]
    if rng.random() < 0.5 and len(buf) >= 19:
        buf[16:18] = min(len(buf), 65535).to_bytes(2, "big")
    return bytes(buf)


def campaign(n: int, seed: int) -> dict:
    from fastpath import bgp
    from fastpath.model import BgpError

    rng = random.Random(seed)
    base = corpus()
    ok = errors = 0
    codes: dict[str, int] = {}
    t0 = time.perf_counter()
    for _ in range(n):
        msg, as4 = rng.choice(base)
        data = mutate(rng, msg)
        if rng.random() < 0.1:
            as4 = not as4
        try:
            bgp.decode(data, as4=as4, max_len=65535)
            ok += 1
        except BgpError as exc:
            errors += 1
            key = f"{exc.code}/{exc.subcode}"
            codes[key] = codes.get(key, 0) + 1
        except Exception as exc:  # noqa: BLE001 - this is exactly what the campaign looks for
            return {"n": n, "crash": {"input": data.hex(), "as4": as4, "error": repr(exc)}}
    elapsed = time.perf_counter() - t0
    return {"n": n, "ok": ok, "bgp_errors": errors, "codes": dict(sorted(codes.items())), "seconds": elapsed,
            "crash": None}


def run(quick: bool) -> list[dict]:
    from fastpath import bgp

    n = 20_000 if quick else 300_000
    res = campaign(n, seed=42)
    if res["crash"]:
        raise AssertionError(f"decoder raised a non-BgpError: {res['crash']}")
    base = corpus()
    t0 = time.perf_counter()
    reps = 0
    while time.perf_counter() - t0 < 0.3:
        for m, as4 in base:
            bgp.decode(m, as4=as4, max_len=65535)
        reps += 1
    valid_rate = reps * len(base) / (time.perf_counter() - t0)
    top = ", ".join(f"{k}: {v}" for k, v in sorted(res["codes"].items(), key=lambda kv: -kv[1])[:6])
    return [{
        "name": "BGP decoder on mutated messages",
        "unit": "decodes/s",
        "streamlb": n / res["seconds"],
        "baselines": {"unmutated corpus": valid_rate},
        "higher_is_better": True,
        "notes": (f"{n:,} mutated inputs (seed 42): {res['ok']:,} decoded, {res['bgp_errors']:,} BgpError, "
                  f"0 other exceptions; most frequent NOTIFICATION codes {top}"),
    }]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks fuzz", description="long BGP decoder fuzz campaign")
    ap.add_argument("--n", type=int, default=1_000_000, help="number of mutated inputs")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)
    res = campaign(args.n, args.seed)
    if res["crash"]:
        print(f"CRASH after <= {args.n} inputs: {res['crash']['error']} (as4={res['crash']['as4']})")
        print(res["crash"]["input"])
        return 1
    print(f"{args.n:,} mutated inputs (seed {args.seed}) in {res['seconds']:.1f} s "
          f"({args.n / res['seconds']:,.0f}/s): {res['ok']:,} decoded, {res['bgp_errors']:,} BgpError, "
          "0 other exceptions")
    for code, count in res["codes"].items():
        print(f"  NOTIFICATION {code}: {count:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
