"""BFD: control packet codec speed, decoder robustness at volume, and how fast a router drops a dead node's routes.

What is measured (``--quick`` in brackets)
* **Codec**: building and parsing a 24-byte control packet with ``fastpath.bfd`` (the compiled ``_bfd``), against
  ``struct.pack`` / ``struct.unpack_from`` of the same fields (no checks, no result object) and the pure twin
  ``_bfd_py``, in the same run. Best of 5 timed loops of 200,000 calls [50,000].
* **Fuzz**: 1,000,000 [20,000] seeded mutations (bit flips, byte overwrites, truncation, extension, insertion,
  deletion; short results mostly padded back to a full header; the length byte re-fixed half of the time) of valid
  packets of every state and flag combination, fed
  to ``parse_control``; the figure that matters is in the notes — inputs that raised anything but ``BfdError``
  (must be 0). ``python -m benchmarks bfd-fuzz --n N [--seed S]`` runs a campaign alone and exits 1 on a crash.
* **BGP withdrawal on node link down**: a ``streamlb speak`` node and BIRD 2 on one bridge (namespaces made
  here); the node's link is set down and BIRD's RIB is polled (``birdc``, every ~20 ms) until the node's route is
  gone; then the link comes back and the next trial waits for the route. Three configurations in the same run:
  BFD 300 ms × 3 (BFDProfile on the BGPPeer, ``bfd on`` at BIRD; BGP hold 90 s) — 10 trials [3]; no BFD, hold
  timer 3 s (``holdTime: 3s``, BIRD ``hold time 3``) — 5 trials [2]; no BFD, hold timer 90 s (the default) —
  measured once in a full run; in ``--quick`` it is *computed*, not measured. The computation: BIRD starts every
  BGP timer, the hold timer included, at its value less a random 0–25 % (its reading of the RFC 4271 §10 jitter),
  so it drops the session 67.5–90 s after the last KEEPALIVE it received; KEEPALIVEs come every 30 s, so a link
  failing at a random moment is noticed after 37.5–90 s, 63.75 s on average (the same reasoning gives 1.25–3 s,
  mean 2.1 s, for the 3 s hold time, which the measured trials follow). Reported: median (p50) and maximum seconds;
  the polling interval and the ``birdc`` round trip (~10–20 ms) are included in every figure.

Not measured: FRR as the router (the integration test asserts the same bound for FRR), multi-hop sessions.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import struct
import sys
import time
from pathlib import Path

NAME = "bfd"

_HDR = struct.Struct("!BBBBIIIII")


# --- codec -----------------------------------------------------------------------------------------------------------


def _best(fn, n: int, reps: int = 5) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t0)
    return n / best


def _codec_rows(quick: bool) -> list[dict]:
    from fastpath import _bfd_py, bfd

    n = 50_000 if quick else 200_000
    args = (3, 0, 3, 0x01020304, 0x0A0B0C0D, 300_000, 300_000, 0)

    def build_c(k: int) -> None:
        f = bfd.build_control
        for _ in range(k):
            f(*args)

    def build_py(k: int) -> None:
        f = _bfd_py.build_control
        for _ in range(k):
            f(*args)

    def build_struct(k: int) -> None:
        p = _HDR.pack
        for _ in range(k):
            p(0x20, 0xC0, 3, 24, 0x01020304, 0x0A0B0C0D, 300_000, 300_000, 0)

    pkt = bfd.build_control(*args)

    def parse_c(k: int) -> None:
        f = bfd.parse_control
        for _ in range(k):
            f(pkt)

    def parse_py(k: int) -> None:
        f = _bfd_py.parse_control
        for _ in range(k):
            f(pkt)

    def parse_struct(k: int) -> None:
        u = _HDR.unpack_from
        for _ in range(k):
            u(pkt, 0)

    impl = bfd.IMPLEMENTATION
    return [
        {"name": "BFD control packet build", "unit": "packets/s", "streamlb": _best(build_c, n),
         "baselines": {"struct.pack (no checks)": _best(build_struct, n), "pure twin": _best(build_py, n)},
         "higher_is_better": True, "plot": "bars",
         "notes": f"fastpath.bfd ({impl}) with argument range checks; 24-byte packet, state Up"},
        {"name": "BFD control packet parse", "unit": "packets/s", "streamlb": _best(parse_c, n),
         "baselines": {"struct.unpack_from (no checks)": _best(parse_struct, n), "pure twin": _best(parse_py, n)},
         "higher_is_better": True, "plot": "bars",
         "notes": f"fastpath.bfd ({impl}): RFC 5880 §6.8.6 checks and a Control named tuple; the baseline only "
                  "unpacks the nine header fields"},
    ]


# --- fuzz ------------------------------------------------------------------------------------------------------------


def corpus() -> list[bytes]:
    from fastpath import bfd

    rng = random.Random(3)
    out = []
    for state in range(4):
        for flags in range(32):
            out.append(bfd.build_control(
                state, rng.randrange(9), rng.randrange(1, 256), rng.randrange(1, 2**32),
                rng.randrange(1, 2**32) if state > 1 or flags & 1 else 0, rng.randrange(2**32), rng.randrange(2**32),
                rng.randrange(2) * 50_000, bool(flags & 16), bool(flags & 8), bool(flags & 4), False,
                bool(flags & 2)))
    for alen in (3, 11, 24, 28):  # authentication sections (simple password, keyed MD5, SHA1 sizes)
        auth = bytes([alen % 5, alen]) + bytes(rng.randrange(256) for _ in range(alen - 2))
        out.append(bfd.build_control(3, 0, 3, 5, 6, 300_000, 300_000, 0, False, False, False, True, False, auth))
    return out


def mutate(rng: random.Random, pkt: bytes) -> bytes:
    buf = bytearray(pkt)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        if op == 0 and buf:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 2 and buf:
            del buf[rng.randrange(len(buf)):]
        elif op == 3:
            buf += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 4:
            i = rng.randrange(len(buf) + 1)
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif buf:
            i = rng.randrange(len(buf))
            del buf[i:i + rng.randint(1, 4)]
    if len(buf) < 24 and rng.random() < 0.8:  # mostly keep a full header, so the field checks are reached
        buf += bytes(rng.randrange(256) for _ in range(24 - len(buf) + rng.randrange(4)))
    if rng.random() < 0.5 and len(buf) >= 4:
        buf[3] = min(len(buf), 255)
    return bytes(buf)


def campaign(n: int, seed: int) -> dict:
    from fastpath import bfd

    rng = random.Random(seed)
    base = corpus()
    ok = errors = 0
    reasons: dict[str, int] = {}
    t0 = time.perf_counter()
    parse = bfd.parse_control
    for _ in range(n):
        data = mutate(rng, rng.choice(base))
        try:
            parse(data)
            ok += 1
        except bfd.BfdError as exc:
            errors += 1
            k = "".join(c for c in str(exc).split(":")[0] if not c.isdigit()).strip(" ,")
            reasons[k] = reasons.get(k, 0) + 1
        except Exception as exc:  # noqa: BLE001 - exactly what the campaign looks for
            return {"n": n, "crash": {"input": data.hex(), "error": repr(exc)}}
    return {"n": n, "ok": ok, "bfd_errors": errors, "reasons": reasons, "seconds": time.perf_counter() - t0,
            "crash": None, "implementation": bfd.IMPLEMENTATION}


def _fuzz_row(quick: bool) -> dict:
    from fastpath import bfd

    n = 20_000 if quick else 1_000_000
    res = campaign(n, seed=42)
    if res["crash"]:
        raise AssertionError(f"BFD decoder raised a non-BfdError: {res['crash']}")
    base = corpus()
    t0 = time.perf_counter()
    reps = 0
    while time.perf_counter() - t0 < 0.3:
        for m in base:
            bfd.parse_control(m)
        reps += 1
    valid_rate = reps * len(base) / (time.perf_counter() - t0)
    return {
        "name": "BFD decoder on mutated packets", "unit": "parses/s", "streamlb": n / res["seconds"],
        "baselines": {"unmutated corpus": valid_rate}, "higher_is_better": True,
        "notes": (f"{n:,} mutated inputs (seed 42, {res['implementation']}): {res['ok']:,} parsed, "
                  f"{res['bfd_errors']:,} BfdError, 0 other exceptions (the rate includes the Python mutator)"),
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m benchmarks bfd-fuzz", description="BFD decoder fuzz campaign")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)
    res = campaign(args.n, args.seed)
    if res["crash"]:
        print(f"CRASH: {res['crash']['error']}\n{res['crash']['input']}")
        return 1
    print(f"{args.n:,} mutated inputs (seed {args.seed}, {res['implementation']}) in {res['seconds']:.1f} s: "
          f"{res['ok']:,} parsed, {res['bfd_errors']:,} BfdError, 0 other exceptions")
    for k, v in sorted(res["reasons"].items(), key=lambda kv: -kv[1]):
        print(f"  {k}: {v:,}")
    return 0


# --- BGP withdrawal on link down -------------------------------------------------------------------------------------

PREFIX = "198.51.100.0/32"
NODE, ROUTER = "10.92.0.1", "10.92.0.2"


def _withdrawal_trials(workdir: Path, *, bfd: bool, hold: int, trials: int) -> list[float]:
    from events.logfile import FileLog
    from tests.integration.bfd_env import BirdBfd
    from tests.integration.speaker_env import Topology, addr, wait_for, yaml_events
    from tests.integration.test_bfd_interop import config, log_speaker
    from tests.integration.test_speaker_speak import service_yaml

    topo = Topology()
    started: list = []
    out = []
    try:
        hub = topo.ns("hub")
        topo.bridge(hub)
        node, rtr = topo.ns("a"), topo.ns("r")
        for n, role, ip in ((node, "a", NODE), (rtr, "r", ROUTER)):
            topo.link(n, "eth0", hub, f"p{role}")
            hub.run("ip", "link", "set", f"p{role}", "master", "br0")
            addr(n, "eth0", f"{ip}/24")
        bird = BirdBfd(rtr, workdir / "bird", 64513, ROUTER, hold=hold, bfd=bfd)
        bird.neighbor("node", ROUTER, NODE, 64512)
        bird.start()
        started.append(bird)
        spec = ", bfdProfile: fast" if bfd else f", holdTime: {hold}s"
        log = workdir / "events.evlog"
        peer = ("\n---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: bird, namespace: metallb-system}\n"
                f"spec: {{myASN: 64512, peerASN: 64513, peerAddress: {ROUTER}{spec}}}\n")
        profile = "{receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3}"  # used only with bfd
        evs = yaml_events(workdir, config(profile, peers_yaml=peer))
        evs += yaml_events(workdir, service_yaml("web", "bgppool", "node-a"))
        FileLog(log).append(evs)
        spk = log_speaker(node, log, workdir).start()
        started.append(spk)
        rng = random.Random(11)
        for _ in range(trials):
            wait_for(lambda: PREFIX in bird.prefixes("node")
                     and (not bfd or bird.bfd_sessions().get(NODE, {}).get("state") == "Up"), 120,
                     what="the route at BIRD")
            time.sleep(0.5 + rng.random() * (hold / 3 if not bfd else 1.0))  # a random phase of the keepalives
            t0 = time.monotonic()
            node.run("ip", "link", "set", "eth0", "down")
            while PREFIX in bird.prefixes("node"):
                if time.monotonic() - t0 > hold + 30:
                    raise AssertionError("BIRD kept the route past the hold time")
                time.sleep(0.01)
            out.append(time.monotonic() - t0)
            node.run("ip", "link", "set", "eth0", "up")
    finally:
        for r in reversed(started):
            r.stop()
        topo.close()
    return out


def _withdrawal_rows(quick: bool) -> list[dict]:
    import tempfile

    if os.geteuid() != 0 or not shutil.which("bird") or not shutil.which("ip"):
        raise RuntimeError("needs root, iproute2 and bird2")
    with tempfile.TemporaryDirectory(prefix="slb-bench-bfd-") as d:
        base = Path(d)
        (base / "b").mkdir(), (base / "h3").mkdir(), (base / "h90").mkdir()
        with_bfd = _withdrawal_trials(base / "b", bfd=True, hold=90, trials=3 if quick else 10)
        hold3 = _withdrawal_trials(base / "h3", bfd=False, hold=3, trials=2 if quick else 5)
        if quick:
            hold90, how90 = [63.75], ("computed, not measured (37.5–90 s, mean 63.75 s: BIRD's hold timer 67.5–90 s "
                                      "after the last KEEPALIVE, which came 0–30 s before the link failed)")
        else:
            hold90 = _withdrawal_trials(base / "h90", bfd=False, hold=90, trials=1)
            how90 = "measured once"
    p50 = statistics.median
    return [{
        "name": "BGP: node link down -> BIRD withdrew the route", "unit": "s (p50)",
        "streamlb": p50(with_bfd),
        "baselines": {"hold timer 3 s": p50(hold3), "hold timer 90 s (default)": p50(hold90)},
        "higher_is_better": False, "plot": "bars",
        "notes": (f"BFD 300 ms x 3: {len(with_bfd)} trials, p50 {p50(with_bfd):.3f} s, max {max(with_bfd):.3f} s "
                  f"(bound 3 x 0.3 + 0.5 = 1.4 s); hold 3 s: {len(hold3)} trials, p50 {p50(hold3):.2f} s, "
                  f"max {max(hold3):.2f} s; hold 90 s: {how90}: {hold90[0]:.1f} s"),
        "samples": {"bfd": with_bfd, "hold3": hold3, "hold90": hold90},
    }]


def run(quick: bool) -> list[dict]:
    rows = _codec_rows(quick)
    rows.append(_fuzz_row(quick))
    rows += _withdrawal_rows(quick)
    return rows


if __name__ == "__main__":
    sys.exit(main())
