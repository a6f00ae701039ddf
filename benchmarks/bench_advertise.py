"""Time to advertise N prefixes into a real router: streamlb's BGP speaker vs gobgpd, both into BIRD 2.

What is measured: a fresh BIRD (passive, eBGP multihop, ``import all``) on a loopback port, one sender per trial.
The figure is the time from the session reaching Established (BIRD's own timestamp, ms resolution) until BIRD's
table holds all N /32 prefixes (``birdc show route count``, polled every 5 ms) — the transfer, the receiver's
parsing and its table inserts, which is what a router sees when a speaker (re)starts.

* **streamlb**: the speaker's real transport and session (``fastpath.emit.bgp.PeerTransport`` driving
  ``fastpath.session.Session``), given the N routes with ``set_routes`` before it connects; UPDATEs are packed by
  the fastpath (as many prefixes per UPDATE as the negotiated size allows).
* **gobgpd** (the reference, run for real): its global RIB is loaded with the same N prefixes from an MRT dump
  before its neighbor is configured (SIGHUP), so it too starts with a full RIB.

Both run on the same machine in the same invocation; the ratio is gobgpd's time / streamlb's time.

What is not measured: session set-up (connect retry timers differ by implementation: gobgpd waits ~5 s before its
first connect, which is excluded), the poll granularity for small N (5 ms; at 1k prefixes both are near it),
BIRD's export to the kernel (``export none``), and IPv6 (the same code path with MP_REACH).
"""

from __future__ import annotations

import asyncio
import ipaddress
import statistics
import threading
import time

from benchmarks.peers import Bird, Gobgpd, have

NAME = "advertise"

BIRD_AS, GOBGP_AS, STREAMLB_AS = 64512, 64513, 64514


def _prefixes(n: int) -> list[str]:
    base = ipaddress.IPv4Address("100.64.0.0")
    return [f"{base + i}/32" for i in range(n)]


def _gobgpd_trial(n: int) -> float:
    prefixes = _prefixes(n)
    with Bird(BIRD_AS, {"gobgp": ("127.0.0.2", GOBGP_AS)}) as bird, Gobgpd(GOBGP_AS, "10.255.0.2") as gob:
        gob.load(prefixes, "127.0.0.2")
        gob.connect("127.0.0.1", bird.port, BIRD_AS, "127.0.0.2")
        full = bird.wait_routes(n, timeout=300)
        est = bird.established_at("gobgp")
        if est is None:
            raise RuntimeError("BIRD holds the routes but reports no Established time for gobgp")
        return full - est


def _streamlb_trial(n: int) -> float:
    from fastpath.emit.bgp import PeerSpec, PeerTransport
    from fastpath.session import Route, SessionConfig

    routes = [Route(prefix=p) for p in _prefixes(n)]
    with Bird(BIRD_AS, {"streamlb": ("127.0.0.3", STREAMLB_AS)}) as bird:
        loop = asyncio.new_event_loop()
        transport: list[PeerTransport] = []

        async def main(started: threading.Event, stop: asyncio.Event) -> None:
            t = PeerTransport(
                PeerSpec(name="bird", address="127.0.0.1", port=bird.port, source_address="127.0.0.3",
                         ebgp_multihop=True),
                SessionConfig(local_as=STREAMLB_AS, peer_as=BIRD_AS, router_id="10.255.0.3", families=("ipv4",)),
            )
            transport.append(t)
            t.set_routes(routes)
            t.start()
            started.set()
            await stop.wait()
            await t.stop(withdraw=False)

        started = threading.Event()
        stop_holder: list[asyncio.Event] = []

        def runner() -> None:
            asyncio.set_event_loop(loop)
            stop = asyncio.Event()
            stop_holder.append(stop)
            loop.run_until_complete(main(started, stop))

        th = threading.Thread(target=runner, daemon=True)
        th.start()
        try:
            if not started.wait(30):
                raise RuntimeError("streamlb transport did not start")
            full = bird.wait_routes(n, timeout=300)
            est = bird.established_at("streamlb")
            if est is None:
                raise RuntimeError("BIRD holds the routes but reports no Established time for streamlb")
            return full - est
        finally:
            if stop_holder:
                loop.call_soon_threadsafe(stop_holder[0].set)
            th.join(timeout=30)
            loop.close()


def run(quick: bool) -> list[dict]:
    missing = have("bird", "birdc", "gobgpd", "gobgp")
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)} (Debian packages bird2, gobgpd)")
    sizes = [1_000, 10_000] if quick else [1_000, 10_000, 30_000, 100_000]
    trials = 1 if quick else 3
    ours, theirs = [], []
    for n in sizes:
        s = statistics.median(_streamlb_trial(n) for _ in range(trials))
        g = statistics.median(_gobgpd_trial(n) for _ in range(trials))
        ours.append([n, s])
        theirs.append([n, g])
    n, s, g = sizes[-1], ours[-1][1], theirs[-1][1]
    return [
        {
            "name": f"advertise {n:,} prefixes into BIRD",
            "unit": "s (Established -> all routes in BIRD)",
            "streamlb": s,
            "baselines": {"gobgpd 3.x": g},
            "higher_is_better": False,
            "notes": f"median of {trials} trial(s) per size; sizes {', '.join(f'{x:,}' for x in sizes)}; "
                     "eBGP over loopback; BIRD 2 imports all",
            "series": {"streamlb speaker": ours, "gobgpd": theirs},
            "series_x": "prefixes advertised",
            "series_y": "seconds from Established to all routes in BIRD",
        }
    ]
