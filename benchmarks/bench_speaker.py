"""The speaker on the wire: GARP burst rate, failover latency, BGP initial convergence.

What is measured (``--quick`` in brackets)
* **GARP burst** for 10,000 IPv4 IPs (20,000 frames) [2,000 IPs] on a veth into a bridge, inside namespaces made
  here: streamlb's ``L2Speaker.announce_many`` (the compiled ``write_arp_burst`` into one buffer + ``sendmmsg``)
  against, in the same run, a Python loop building each frame with ``fastpath.l2`` and calling ``socket.send``
  once per frame, and the C baseline ``../shared/baselines/afpacket_send.c`` (``send()`` per frame and
  ``sendmmsg`` batches of 64; compiled here with gcc; skipped when its required namespace name ``lbnode`` is taken).
* **Failover**: two ``streamlb speak`` processes (node-a, node-b) and a client on one segment, Redis reached over
  a Unix socket. Each run appends ``speaker.down`` (or back ``speaker.up``) for the current L2 owner and measures,
  from just before the XADD to the client's raw socket receiving the first gratuitous ARP from the new owner.
  100 runs [10]. Baseline: the same XADD observed by a bare ``XREAD BLOCK`` follower (the transport floor).
  MetalLB itself needs seconds (memberlist failure detection, metallb-behaviour.md §5.7).
* **BGP initial convergence**: 100,000 IPv4 /32s [20,000] into one BIRD 2 receiver on loopback, from the session
  becoming Established (as BIRD reports it) to BIRD holding every prefix; streamlb (routes preloaded into the
  session, as at speaker start) against gobgpd 3 as the speaker (routes preloaded with ``gobgp mrt inject``),
  same attributes (ORIGIN, AS_PATH, NEXT_HOP). The same into a gobgpd 3 receiver [10,000], in two namespaces
  (gobgpd refuses loopback next hops); there the receiver's own ingest dominates both figures.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

NAME = "speaker"
ROOT = Path(__file__).resolve().parents[1]
BASELINES = Path(os.environ.get("STREAMLB_BASELINES", ROOT.parent / "shared" / "baselines"))
if not BASELINES.exists():
    BASELINES = Path("/work/shared/baselines")


def _root() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


# --- GARP burst --------------------------------------------------------------------------------------------------


def _garp_rows(quick: bool) -> list[dict]:
    from fastpath import l2 as frames
    from fastpath.emit import rawsock
    from fastpath.emit.l2 import Interface, L2Speaker
    from tests.integration.speaker_env import Topology

    n_ips = 2_000 if quick else 10_000
    runs = 3 if quick else 5
    topo = Topology()
    own_lbnode = False
    try:
        hub = topo.ns("hub")
        topo.bridge(hub)
        node = topo.ns("node")
        topo.link(node, "eth0", hub, "pnode")
        hub.run("ip", "link", "set", "pnode", "master", "br0")
        mac = bytes.fromhex(node.run("cat", "/sys/class/net/eth0/address").stdout.strip().replace(":", ""))
        idx = int(node.run("cat", "/sys/class/net/eth0/ifindex").stdout.strip())
        iface = Interface("eth0", idx, mac, None)
        ips = [str(ipaddress.IPv4Address(0x0A640000 + i)) for i in range(n_ips)]

        def opener(name: str, proto: int) -> socket.socket:
            with node.entered():
                return rawsock.open_packet_socket(name, proto)

        ours = []
        for _ in range(runs):
            sp = L2Speaker(discover=lambda: {"eth0": iface}, opener=opener)
            sp.open()
            t0 = time.perf_counter()
            sent = sp.announce_many(ips)
            dt = time.perf_counter() - t0
            sp.close()
            if sent != 2 * n_ips:
                raise RuntimeError(f"sent {sent} of {2 * n_ips} frames")
            ours.append(sent / dt)
        with node.entered():
            s = rawsock.open_packet_socket("eth0", 0)
        per_frame = []
        try:
            s.setblocking(True)
            for _ in range(runs):
                t0 = time.perf_counter()
                for ip in ips:
                    a = int(ipaddress.IPv4Address(ip))
                    s.send(frames.build_arp_announce(1, mac, a))
                    s.send(frames.build_arp_announce(2, mac, a))
                per_frame.append(2 * n_ips / (time.perf_counter() - t0))
        finally:
            s.close()
        baselines = {"python send() per frame": statistics.median(per_frame)}
        notes = f"{n_ips} IPs, {2 * n_ips} frames, median of {runs}; fastpath {frames.IMPLEMENTATION}"
        # the C baseline insists on a namespace named lbnode
        src = BASELINES / "afpacket_send.c"
        if src.exists() and shutil.which("gcc") and not Path("/run/netns/lbnode").exists():
            tmp = Path(tempfile.mkdtemp(prefix="slb-bench-"))
            try:
                exe = tmp / "afpacket_send"
                subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True, capture_output=True, timeout=120)
                subprocess.run(["ip", "netns", "add", "lbnode"], check=True, capture_output=True)
                own_lbnode = True
                # a fresh veth pair, created with unique names and moved at once: one end into lbnode, the other
                # onto the bridge in our hub namespace (no device outside namespaces made here is touched)
                ca, cb = f"ca{topo.tag}", f"cb{topo.tag}"
                subprocess.run(["ip", "link", "add", ca, "type", "veth", "peer", "name", cb], check=True,
                               capture_output=True)
                subprocess.run(["ip", "link", "set", ca, "netns", "lbnode"], check=True, capture_output=True)
                subprocess.run(["ip", "link", "set", cb, "netns", hub.name], check=True, capture_output=True)
                subprocess.run(["ip", "-n", "lbnode", "link", "set", ca, "up"], check=True, capture_output=True)
                hub.run("ip", "link", "set", cb, "master", "br0")
                hub.run("ip", "link", "set", cb, "up")
                r = subprocess.run(["ip", "netns", "exec", "lbnode", str(exe), str(2 * n_ips), str(runs), "64", ca],
                                   capture_output=True, text=True, timeout=300)
                data = json.loads(r.stdout)
                for key, label in (("c_send", "C send() per frame"), ("c_sendmmsg", "C sendmmsg x64")):
                    if key in data:
                        baselines[label] = data[key]["frames"] / data[key]["median_s"]
            except (subprocess.SubprocessError, ValueError, OSError) as exc:
                notes += f"; C baseline failed: {exc}"
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        else:
            notes += "; C baseline skipped (no gcc/source, or netns lbnode in use)"
        return [{
            "name": "GARP burst send rate (AF_PACKET, veth into a bridge)",
            "unit": "frames/s",
            "streamlb": statistics.median(ours),
            "baselines": baselines,
            "higher_is_better": True,
            "notes": notes,
        }]
    finally:
        if own_lbnode:
            subprocess.run(["ip", "netns", "del", "lbnode"], capture_output=True)
        topo.close()


# --- failover ----------------------------------------------------------------------------------------------------

_CONFIG = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: l2pool, namespace: metallb-system}
spec: {addresses: [10.91.0.50/32]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec: {}
---
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {kubernetes.io/hostname: node-a}}
---
apiVersion: v1
kind: Node
metadata: {name: node-b, labels: {kubernetes.io/hostname: node-b}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  ipFamilies: [IPv4]
  ports: [{port: 80, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-x
  namespace: default
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
  - addresses: [10.244.0.9]
    conditions: {ready: true}
    nodeName: node-a
"""


def _failover_rows(quick: bool) -> list[dict]:
    from events import inputs, schema, stream
    from tests.integration.speaker_env import Topology, addr
    from tests.redis_server import RedisServer

    runs = 10 if quick else 100
    vip = "10.91.0.50"
    macs = {"node-a": "02:00:5e:30:00:0a", "node-b": "02:00:5e:30:00:0b"}
    tmp = Path(tempfile.mkdtemp(prefix="slb-bench-fo-"))
    topo = Topology()
    redis = RedisServer(tmp / "redis", extra=["--unixsocket", str(tmp / "r.sock"), "--unixsocketperm", "777"]).start()
    procs: list[subprocess.Popen] = []
    try:
        hub = topo.ns("hub")
        topo.bridge(hub)
        ns = {}
        for role in ("a", "b", "c"):
            x = topo.attach(hub, role)
            ns[role] = x
        for role, node in (("a", "node-a"), ("b", "node-b")):
            ns[role].run("ip", "link", "set", "eth0", "address", macs[node])
        addr(ns["c"], "eth0", "10.91.0.100/24")
        url = f"unix://{tmp / 'r.sock'}"
        lg = stream.StreamLog.from_url(url, "bench")
        (tmp / "c.yaml").write_text(_CONFIG)
        lg.append([o.event for rec in inputs.read_file(tmp / "c.yaml") for o in rec.outcomes
                   if isinstance(o, inputs.Accepted)])
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        for role, node in (("a", "node-a"), ("b", "node-b")):
            with open(tmp / f"{node}.log", "wb") as logf:
                procs.append(subprocess.Popen(
                    ["ip", "netns", "exec", ns[role].name, sys.executable, "-m", "reconciler", "speak", "--node", node,
                     "--redis-url", url, "--cluster", "bench", "--no-bgp", "--status-file",
                     str(tmp / f"{node}.json"), "--log-level", "warning"],
                    stdout=subprocess.DEVNULL, stderr=logf, env=env, cwd=ROOT))
        with ns["c"].entered():
            cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
        cap.bind(("eth0", 0x0806))
        cap.settimeout(30)
        vip_b = socket.inet_aton(vip)

        def wait_garp(mac: str, deadline: float) -> float:
            want = bytes.fromhex(mac.replace(":", ""))
            while True:
                try:
                    data = cap.recv(128)
                except socket.timeout:
                    raise TimeoutError(f"no GARP from {mac}") from None
                t = time.time()
                if data[6:12] == want and data[28:32] == vip_b and data[38:42] == vip_b:
                    return t
                if time.time() > deadline:
                    raise TimeoutError(f"no GARP from {mac}")

        # wait until both speakers are up and one owns the VIP (its first GARP)
        owner = None
        t_end = time.time() + 60
        want = {bytes.fromhex(m.replace(":", "")): n for n, m in macs.items()}
        while owner is None:
            try:
                data = cap.recv(128)
            except socket.timeout:
                raise TimeoutError("no speaker announced the VIP") from None
            if data[28:32] == vip_b and data[6:12] in want:
                owner = want[data[6:12]]
            if time.time() > t_end:
                raise TimeoutError("no speaker announced the VIP")
        for _ in range(200):  # both speakers up (their speaker.up folded)
            st = [json.loads((tmp / f"{n}.json").read_text()) if (tmp / f"{n}.json").exists() else {}
                  for n in macs]
            if all(s.get("log_up") for s in st):
                break
            time.sleep(0.05)
        time.sleep(0.5)
        samples = []
        down = None
        for i in range(runs):
            if down is None:  # fail the owner over
                other = "node-b" if owner == "node-a" else "node-a"
                ev, expect = schema.SpeakerDown(node=owner), other
                down = owner
            else:  # bring it back; the VIP returns to its elected owner
                ev, expect = schema.SpeakerUp(node=down), down
                down = None
            cap.settimeout(30)
            while True:  # drain what is queued
                cap.setblocking(False)
                try:
                    cap.recv(128)
                except BlockingIOError:
                    break
            cap.settimeout(30)
            t0 = time.time()
            lg.append([ev])
            t1 = wait_garp(macs[expect], t0 + 30)
            samples.append((t1 - t0) * 1000)
            owner = expect
            time.sleep(0.05)
        # baseline: a bare follower seeing the same kind of append
        follow_samples = []
        lg2 = stream.StreamLog.from_url(url, "bench")
        for _ in range(runs):
            pos = lg2.last_id()
            got: list[float] = []

            def follower() -> None:
                recs = lg2.follow(pos, 5000)
                if recs:
                    got.append(time.time())

            th = threading.Thread(target=follower)
            th.start()
            time.sleep(0.02)
            t0 = time.time()
            lg.append([schema.SpeakerUp(node="node-x")])
            th.join(10)
            if got:
                follow_samples.append((got[0] - t0) * 1000)
        lg2.close()
        lg.close()
        cap.close()
        samples.sort()

        def pct(xs: list[float], q: float) -> float:
            xs = sorted(xs)
            return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]

        series = {"streamlb speak: event -> first GARP": sorted(samples)}
        if follow_samples:
            series["bare XREAD follower: event -> wake-up"] = sorted(follow_samples)
        base = {"bare XREAD follower p50": pct(follow_samples, 0.5)} if follow_samples else {}
        base99 = {"bare XREAD follower p99": pct(follow_samples, 0.99)} if follow_samples else {}
        return [
            {"name": "failover: event appended -> first GARP from the new owner, p50", "unit": "ms",
             "streamlb": pct(samples, 0.5), "baselines": base, "higher_is_better": False,
             "notes": f"{runs} failovers/failbacks, two `streamlb speak` processes in netns, Redis over a Unix "
                      "socket; MetalLB needs seconds (memberlist)", "series": series, "plot": "cdf",
             "plot_title": "failover: event appended -> first GARP from the new owner (all runs)",
             "series_x": "ms from XADD of the event", "series_y": "fraction of failovers"},
            {"name": "failover: event appended -> first GARP from the new owner, p99", "unit": "ms",
             "streamlb": pct(samples, 0.99), "baselines": base99, "higher_is_better": False,
             "notes": f"goal < 10 ms; max {max(samples):.2f} ms"},
        ]
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(10)
        topo.close()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# --- BGP convergence ---------------------------------------------------------------------------------------------


def _run_streamlb(port: int, prefixes: list[str], peer_as: int, wait_est, wait_done, wait_empty, *,
                  peer: str = "127.0.0.1", source: str = "127.0.0.2", socket_factory=None) -> tuple:
    from fastpath.emit.bgp import PeerSpec, PeerTransport
    from fastpath.session import Route, SessionConfig

    loop = asyncio.new_event_loop()
    th = threading.Thread(target=loop.run_forever, daemon=True)
    th.start()
    try:
        cfg = SessionConfig(64512, peer_as, source, hold_time=90, families=("ipv4",))
        routes = [Route(p) for p in prefixes]  # the same attributes as the MRT-loaded gobgpd routes
        est_local: list[float] = []

        async def start() -> PeerTransport:
            kw = {"socket_factory": socket_factory} if socket_factory else {}
            t = PeerTransport(PeerSpec("bench", peer, port, source_address=source, ebgp_multihop=True), cfg, **kw)
            t.on_event = lambda tr, ev: ev.kind == "established" and est_local.append(time.time())
            t.set_routes(routes)
            t.start()
            return t

        t = asyncio.run_coroutine_threadsafe(start(), loop).result(60)
        done = wait_done()
        est = wait_est() or (est_local[0] if est_local else None)
        updates = t.session.counters.updates_out
        asyncio.run_coroutine_threadsafe(t.stop(withdraw=True), loop).result(60)
        wait_empty()
        return (done - est if est else None), updates
    finally:
        async def _cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        th.join(10)
        loop.close()


def _bgp_rows(quick: bool) -> list[dict]:
    from benchmarks.peers import Bird, Gobgpd, have

    if have("bird", "birdc", "gobgpd", "gobgp"):
        return []
    n = 20_000 if quick else 100_000
    prefixes = [f"{ipaddress.IPv4Address(0x0B000000 + i)}/32" for i in range(n)]
    out = []

    def empty(count) -> None:
        deadline = time.monotonic() + 120
        while count() > 0 and time.monotonic() < deadline:
            time.sleep(0.05)

    with Bird(64500, {"slb": ("127.0.0.2", 64512), "gob": ("127.0.0.3", 64513)}) as bird:
        ours, updates = _run_streamlb(bird.port, prefixes, 64500, lambda: bird.established_at("slb"),
                                      lambda: bird.wait_routes(n, 300), lambda: empty(bird.route_count))
        with Gobgpd(64513, "127.0.0.3") as gob:
            gob.load(prefixes, "127.0.0.3")
            gob.connect("127.0.0.1", bird.port, 64500, "127.0.0.3")
            done = bird.wait_routes(n, 300)
            est = bird.established_at("gob")
            theirs = done - est if est else None
        out.append({
            "name": f"BGP: Established -> {n:,} IPv4 /32s in BIRD's RIB",
            "unit": "s", "streamlb": ours, "baselines": {"gobgpd 3 as the speaker": theirs},
            "higher_is_better": False,
            "notes": f"loopback, one BIRD 2 receiver; streamlb sent {updates} UPDATEs; both speakers send ORIGIN, "
                     "AS_PATH, NEXT_HOP; "
                     "Established time from BIRD (ms resolution); anchor gobgpd -> BIRD 0.54 s "
                     "(../shared/baselines/README.md)",
        })
    out += _bgp_gobgp_receiver(prefixes[: 10_000] if quick else prefixes)
    return out


def _bgp_gobgp_receiver(prefixes: list[str]) -> list[dict]:
    """The same workload into a gobgpd receiver. gobgpd refuses loopback next hops, so this one runs in two
    namespaces made here: ``spk`` (streamlb's session, then gobgpd as the sender) and ``rtr`` (the receiver)."""
    import re

    from benchmarks.peers import mrt_table_dump
    from tests.integration.speaker_env import GoBgp, Topology, addr, stop_process

    n = len(prefixes)
    topo = Topology()
    tmp = Path(tempfile.mkdtemp(prefix="slb-bench-gob-"))
    rx = sender = None
    try:
        spk, rtr = topo.ns("spk"), topo.ns("rtr")
        topo.link(spk, "eth0", rtr, "eth0")
        addr(spk, "eth0", "10.92.0.1/24")
        addr(spk, "eth0", "10.92.0.3/24")
        addr(rtr, "eth0", "10.92.0.2/24")
        rx = GoBgp(rtr, tmp, 64501, "10.92.0.2")
        rx.neighbor("10.92.0.1", 64512, graceful_restart=False)
        rx.neighbor("10.92.0.3", 64513, graceful_restart=False)
        rx.start()

        def rib_size() -> int:
            m = re.search(r"Destination: (\d+)", rx.cli("global", "rib", "summary", check=False).stdout)
            return int(m.group(1)) if m else 0

        def wait_routes() -> float:
            deadline = time.monotonic() + 300
            while rib_size() < n:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"gobgpd holds {rib_size()} of {n}")
                time.sleep(0.01)
            return time.time()

        def empty() -> None:
            deadline = time.monotonic() + 120
            while rib_size() > 0 and time.monotonic() < deadline:
                time.sleep(0.05)

        def wait_est(address: str) -> float | None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if rx.neighbor_state(address) == "established":
                    return time.time()
                time.sleep(0.002)
            return None

        ours, updates = _run_streamlb(179, prefixes, 64501, lambda: None, wait_routes, empty, peer="10.92.0.2",
                                      source="10.92.0.1", socket_factory=lambda fam: spk.socket(fam))
        # gobgpd as the sender, routes injected before it has a neighbour
        conf = tmp / "sender.toml"
        conf.write_text('[global.config]\n  as = 64513\n  router-id = "10.92.0.3"\n  port = -1\n')
        with open(tmp / "sender.log", "wb") as logf:
            sender = spk.popen("gobgpd", "-f", str(conf), "--api-hosts", "127.0.0.1:50052", "--pprof-disable",
                               "-l", "warn", stdout=logf, stderr=subprocess.STDOUT)
        cli = ["gobgp", "-p", "50052"]
        deadline = time.monotonic() + 20
        while spk.run(*cli, "global", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("sender gobgpd did not start")
            time.sleep(0.05)
        (tmp / "rib.mrt").write_bytes(mrt_table_dump(prefixes, "10.92.0.3", 64513))
        spk.run(*cli, "mrt", "inject", "global", str(tmp / "rib.mrt"), timeout=300)
        deadline = time.monotonic() + 300
        while True:
            m = re.search(r"Destination: (\d+)", spk.run(*cli, "global", "rib", "summary", check=False).stdout)
            if m and int(m.group(1)) >= n:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("sender gobgpd did not load the routes")
            time.sleep(0.05)
        conf.write_text(conf.read_text() + '[[neighbors]]\n  [neighbors.config]\n    neighbor-address = "10.92.0.2"\n'
                        "    peer-as = 64501\n  [neighbors.transport.config]\n    local-address = \"10.92.0.3\"\n"
                        "  [neighbors.timers.config]\n    connect-retry = 1\n")
        sender.send_signal(signal.SIGHUP)
        est = wait_est("10.92.0.3")
        done = wait_routes()
        theirs = done - est if est else None
        return [{
            "name": f"BGP: Established -> {n:,} IPv4 /32s in gobgpd's RIB",
            "unit": "s", "streamlb": ours, "baselines": {"gobgpd 3 as the speaker": theirs},
            "higher_is_better": False,
            "notes": f"veth between two namespaces, one gobgpd 3 receiver; streamlb sent {updates} UPDATEs; "
                     "Established from streamlb's session event / the receiver's neighbour state polled every few "
                     "ms; anchor gobgpd -> gobgpd 1.70 s SYN->RIB (../shared/baselines/README.md)",
        }]
    finally:
        if sender is not None:
            stop_process(sender)
        if rx is not None:
            rx.stop()
        topo.close()
        shutil.rmtree(tmp, ignore_errors=True)


def run(quick: bool) -> list[dict]:
    if not _root():
        return [{"name": "speaker benchmarks", "unit": "-", "streamlb": None, "baselines": {},
                 "higher_is_better": True, "notes": "skipped: needs root for network namespaces"}]
    rows: list[dict] = []
    rows += _garp_rows(quick)
    rows += _failover_rows(quick)
    rows += _bgp_rows(quick)
    return rows
