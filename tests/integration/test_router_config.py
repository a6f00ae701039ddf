"""``streamlb router-config`` output loaded unchanged into a real router: FRR (zebra + bgpd + bfdd, configured
through ``vtysh -f``) or BIRD 2, in a namespace of its own, with ``streamlb speak`` on two nodes (namespaces) and a
real redis-server (over a Unix socket, which crosses namespaces).

Observers: the router's own CLI (session state, BFD state, BIRD's import counters, FRR's update debug log) and the
router namespace's kernel table, where ECMP shows as one route with a next hop per node.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import shutil
from pathlib import Path

import pytest

from events import inputs, logfile, schema, stream
from tests.integration import manifests as m
from tests.integration.speaker_env import Bird, Netns, Topology, addr, have_root_netns, stop_process, wait_for
from tests.integration.speaker_env import SpeakProc
from tests.integration.test_speaker_speak import speak
from tests.redis_server import RedisServer, redis_server  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not have_root_netns(), reason="needs root and iproute2 for network namespaces"),
]

ROOT = Path(__file__).resolve().parents[2]
ROUTER = "10.91.0.254"
NODES = {"node-a": "10.91.0.1", "node-b": "10.91.0.2"}
ROUTER6 = "fd00:91::fe"
NODES6 = {"node-a": "fd00:91::1", "node-b": "fd00:91::2"}
SERVICES = ("web", "api", "dns")

CONFIG = f"""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bgppool, namespace: metallb-system}}
spec: {{addresses: [198.51.100.0/28]}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp, namespace: metallb-system}}
spec: {{ipAddressPools: [bgppool], communities: ["64512:7"]}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: router, namespace: metallb-system}}
spec:
  myASN: 64512
  peerASN: 64513
  peerAddress: {ROUTER}
  holdTime: 9s
  __BFD__
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {{name: fast, namespace: metallb-system}}
spec: {{receiveInterval: 200, transmitInterval: 200, detectMultiplier: 3}}
""" + "".join(f"""---
apiVersion: v1
kind: Node
metadata: {{name: {n}, labels: {{kubernetes.io/hostname: {n}}}}}
status:
  addresses: [{{type: InternalIP, address: {ip}}}]
""" for n, ip in NODES.items())


def services_yaml() -> str:
    return "".join(f"---\n{m.service(name, f'10.96.1.{i + 1}', f'10.244.0.{i + 1}', 'node-a')}\n"
                   for i, name in enumerate(SERVICES))


# the rogue: node-b's speaker folding a crafted log — a pool outside the cluster's pools, and the real pool
# announced as /31 aggregates the real configuration never produces
ROGUE_EXTRA = """
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: roguepool, namespace: metallb-system}
spec: {addresses: [203.0.113.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: rogue, namespace: metallb-system}
spec: {ipAddressPools: [roguepool]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: rogue-agg, namespace: metallb-system}
spec: {ipAddressPools: [bgppool], aggregationLength: 31}
---
""" + m.service("stolen", "10.96.1.50", "10.244.0.50", "node-b", pool_name="roguepool") + "\n"


def config_yaml(bfd: bool) -> str:
    return CONFIG.replace("__BFD__", "bfdProfile: fast" if bfd else "")


def events_of(path: Path) -> list[schema.Event]:
    out = []
    for rec in inputs.read_file(path):
        for o in rec.outcomes:
            assert not isinstance(o, inputs.Rejected), o
            if isinstance(o, inputs.Accepted):
                out.append(o.event)
    return out


def router_config(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "reconciler", "router-config", *args], capture_output=True, text=True,
                       cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def kernel_nexthops(ns: Netns, prefix: str) -> list[str]:
    """Gateways of the kernel route for ``prefix`` in ``ns`` (one per ECMP leg)."""
    r = ns.run("ip", "-j", "-6" if ":" in prefix else "-4", "route", "show", "exact", prefix, check=False)
    try:
        routes = json.loads(r.stdout or "[]")
    except ValueError:
        return []
    out = []
    for rt in routes:
        if "gateway" in rt:
            out.append(rt["gateway"])
        for nh in rt.get("nexthops", []):
            out.append(nh.get("gateway"))
    return sorted(out)


# --- the router daemons -------------------------------------------------------------------------------------------


class FrrRouter:
    """zebra + bgpd + bfdd in ``ns`` with private sockets; the configuration goes in through ``vtysh -f``."""

    def __init__(self, ns: Netns, logdir: Path) -> None:
        self.ns, self.logdir = ns, logdir
        self.dir = Path(tempfile.mkdtemp(prefix="slb-frr-"))  # the daemons run as user frr: not under tmp_path
        os.chmod(self.dir, 0o777)
        self.procs: list[subprocess.Popen] = []

    def start(self, config: Path) -> subprocess.CompletedProcess:
        empty = self.dir / "empty.conf"
        empty.write_text("")
        os.chmod(empty, 0o666)
        common = ["-z", str(self.dir / "zserv.api"), "--vty_socket", str(self.dir), "-u", "frr", "-g", "frr",
                  "-f", str(empty)]
        for daemon, extra in (("zebra", []), ("bgpd", []), ("bfdd", ["--bfdctl", str(self.dir / "bfdd.sock")])):
            log = self.dir / f"{daemon}.log"
            self.procs.append(self.ns.popen(
                f"/usr/lib/frr/{daemon}", *common, "-i", str(self.dir / f"{daemon}.pid"),
                "--log", f"file:{log}", *extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_for(lambda d=daemon: (self.dir / f"{d}.vty").exists(), 30, what=f"FRR {daemon} vty socket")
        wait_for(lambda: self.vtysh("-c", "show bgp summary json").returncode == 0, 30, what="vtysh reaches bgpd")
        return self.vtysh("-f", str(config))

    def vtysh(self, *args: str) -> subprocess.CompletedProcess:
        return self.ns.run("vtysh", "--vty_socket", str(self.dir), *args, check=False)

    def show(self, command: str) -> dict:
        try:
            return json.loads(self.vtysh("-c", command).stdout or "{}")
        except ValueError:
            return {}

    def established(self, address: str) -> bool:
        afi = "ipv6" if ":" in address else "ipv4"
        peers = self.show(f"show bgp {afi} unicast summary json").get("peers", {})
        return peers.get(address, {}).get("state") == "Established"

    def bfd_up(self, address: str) -> bool:
        got = self.show("show bfd peers json")
        return any(p.get("peer") == address and p.get("status") == "up" for p in (got if isinstance(got, list) else []))

    def bgp_log(self) -> str:
        p = self.dir / "bgpd.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self) -> None:
        for p in reversed(self.procs):
            stop_process(p)
        for f in self.dir.glob("*.log"):
            shutil.copy(f, self.logdir / f"frr-{f.name}")
        shutil.rmtree(self.dir, ignore_errors=True)


class BirdRouter(Bird):
    """BIRD 2 running the generated configuration as it is."""

    def __init__(self, ns: Netns, workdir: Path, text: str) -> None:
        super().__init__(ns, workdir, asn=0, router_id="")
        self.text = text

    def _config(self) -> str:
        return self.text

    def established(self, address: str) -> bool:
        r = self.cli("show", "protocols", "all", check=False)
        return re.search(r"BGP state:\s+Established", _bird_block(r.stdout, address)) is not None

    def filtered(self, address: str) -> int:
        """How many routes this neighbor's import filter refused (BIRD's import update counters)."""
        r = self.cli("show", "protocols", "all", check=False)
        for line in _bird_block(r.stdout, address).splitlines():
            parts = line.split()
            if parts[:2] == ["Import", "updates:"]:
                return int(parts[4])  # received, rejected, filtered, ignored, accepted
        return -1

    def bfd_up(self, address: str) -> bool:
        r = self.cli("show", "bfd", "sessions", check=False)
        return any(line.split()[:1] == [address] and "Up" in line.split() for line in r.stdout.splitlines())


def _bird_block(text: str, address: str) -> str:
    """The ``show protocols all`` block of the BGP protocol whose neighbor is ``address``."""
    blocks, cur = [], []
    for line in text.splitlines():
        if line and not line[0].isspace() and cur:
            blocks.append("\n".join(cur))
            cur = []
        cur.append(line)
    blocks.append("\n".join(cur))
    return next((b for b in blocks if re.search(rf"Neighbor address:\s+{re.escape(address)}\n", b + "\n")), "")


# --- the lab ------------------------------------------------------------------------------------------------------


@pytest.fixture
def lab(tmp_path: Path):
    topo = Topology()
    redis = RedisServer(tmp_path / "redis", extra=["--unixsocket", str(tmp_path / "redis.sock"),
                                                   "--unixsocketperm", "777"]).start()
    procs: list[SpeakProc] = []
    routers: list = []
    try:
        hub = topo.ns("hub")
        topo.bridge(hub)
        hub.run("ip", "addr", "add", f"{ROUTER}/24", "dev", "br0")
        addr(hub, "br0", f"{ROUTER6}/64")
        ns = {}
        for role, node in (("a", "node-a"), ("b", "node-b")):
            ns[node] = topo.attach(hub, role, f"{NODES[node]}/24", f"{NODES6[node]}/64")
        url = f"unix://{tmp_path / 'redis.sock'}"
        cluster = f"rc{topo.tag}"
        lg = stream.StreamLog.from_url(url, cluster)

        def speaker(node: str, *extra: str, workdir: Path = tmp_path) -> SpeakProc:
            workdir.mkdir(exist_ok=True)
            p = speak(ns[node], node, url, workdir, "--cluster", cluster, "--no-l2", *extra).start()
            procs.append(p)
            return p

        yield {"hub": hub, "ns": ns, "log": lg, "url": url, "cluster": cluster, "speaker": speaker, "tmp": tmp_path,
               "routers": routers}
        lg.close()
    finally:
        for p in procs:
            p.stop(signal.SIGKILL)
        for r in routers:
            r.stop()
        topo.close()
        redis.stop()


def _start_router(lab, vendor: str, text: str):
    path = lab["tmp"] / f"{vendor}.conf"
    path.write_text(text)
    os.chmod(path, 0o644)
    if vendor == "frr":
        r = FrrRouter(lab["hub"], lab["tmp"])
        lab["routers"].append(r)
        res = r.start(path)
        assert res.returncode == 0 and "nknown command" not in res.stdout + res.stderr, res.stdout + res.stderr
        r.vtysh("-c", "debug bgp updates in")  # operational, not configuration: logs every refused prefix
    else:
        r = BirdRouter(lab["hub"], lab["tmp"], text)
        lab["routers"].append(r)
        r.start()
    return r


def _generate(lab, vendor: str, bfd: bool) -> str:
    cfg = lab["tmp"] / "cluster.yaml"
    cfg.write_text(config_yaml(bfd) + services_yaml())
    lab["log"].append(events_of(cfg))
    offline = router_config("--log", str(cfg), "--router", ROUTER, "--vendor", vendor)
    # the live stream gives the same configuration as the file
    live = router_config("--redis-url", lab["url"], "--cluster", lab["cluster"], "--router", ROUTER,
                         "--vendor", vendor)
    assert live == offline
    return offline


def _prefixes(lab) -> list[str]:
    """The Services' /32s, from an offline replay of the same log (the oracle)."""
    from reconciler import fold, state as statemod
    from events import log as logmod

    st = statemod.new()
    for rec in lab["log"].read():
        fold.apply(st, logmod.decode_record(rec))
    ips = sorted(ip for d in st.services.values() for ip in d.ingress)
    assert len(ips) == len(SERVICES)
    return [f"{ip}/{128 if ':' in ip else 32}" for ip in ips]


@pytest.mark.parametrize("vendor", ["frr", "bird"])
def test_generated_router_config_peers_ecmps_and_filters(lab, vendor: str) -> None:
    text = _generate(lab, vendor, bfd=False)
    router = _start_router(lab, vendor, text)
    sp = {n: lab["speaker"](n) for n in NODES}
    for ip in NODES.values():
        wait_for(lambda ip=ip: router.established(ip), 90, what=f"{vendor} session with {ip} Established")
    prefixes = _prefixes(lab)
    want = sorted(NODES.values())
    for p in prefixes:
        wait_for(lambda p=p: kernel_nexthops(lab["hub"], p) == want, 90, what=f"{p} via both nodes (ECMP)")

    # the rogue: node-b's speaker replaced by one folding a crafted log with foreign prefixes
    assert sp["node-b"].stop() == 0
    for p in prefixes:
        wait_for(lambda p=p: kernel_nexthops(lab["hub"], p) == [NODES["node-a"]], 60, what=f"{p} via node-a only")
    crafted = lab["tmp"] / "crafted.yaml"
    crafted.write_text(config_yaml(False) + services_yaml() + ROGUE_EXTRA)
    evlog = lab["tmp"] / "crafted.evlog"
    evlog.write_bytes(logfile.encode_file(events_of(crafted)))
    rogue = lab["speaker"]("node-b", "--log", str(evlog), workdir=lab["tmp"] / "rogue")  # --log: no Redis
    st = wait_for(lambda: (s := rogue.status()) and s.get("peers", {}).get("router", {}).get("state") == "Established"
                  and s, 90, what="rogue speaker Established")
    foreign = {"203.0.113.0/32"} | {f"198.51.100.{i}/31" for i in (0, 2)}  # what the crafted log adds
    wait_for(lambda: rogue.status()["peers"]["router"]["advertised"] == len(prefixes) + len(foreign), 60,
             what="rogue advertised everything")
    assert st["peers"]["router"]["state"] == "Established"
    # its legitimate /32s come back as ECMP legs; the foreign prefixes reached the router and were refused
    for p in prefixes:
        wait_for(lambda p=p: kernel_nexthops(lab["hub"], p) == want, 60, what=f"{p} via both nodes again")
    if vendor == "bird":
        wait_for(lambda: router.filtered(NODES["node-b"]) == len(foreign), 60, what="BIRD filtered the foreign ones")
    else:
        for f in sorted(foreign):
            wait_for(lambda f=f: any(f in ln and "DENIED" in ln for ln in router.bgp_log().splitlines()), 60,
                     what=f"FRR's update log shows {f} refused")
    for f in sorted(foreign):
        assert kernel_nexthops(lab["hub"], f) == [], f
    assert router.established(NODES["node-a"]) and router.established(NODES["node-b"])


@pytest.mark.parametrize("vendor", ["frr", "bird"])
def test_generated_router_config_brings_bfd_up(lab, vendor: str) -> None:
    """Needs the speaker's BFD (helper ``bfd``): the router's BFD sessions come Up with both nodes."""
    text = _generate(lab, vendor, bfd=True)
    assert "profile fast" in text
    router = _start_router(lab, vendor, text)
    for n in NODES:
        lab["speaker"](n)
    for ip in NODES.values():
        wait_for(lambda ip=ip: router.established(ip), 90, what=f"{vendor} session with {ip} Established")
        wait_for(lambda ip=ip: router.bfd_up(ip), 90, what=f"{vendor} BFD session with {ip} Up")


GOLDEN = ROOT / "tests" / "golden" / "routercfg"


@pytest.mark.parametrize("name", ["frr.conf", "frr-v6.conf", "bird.conf", "bird-v6.conf"])
def test_golden_configurations_parse_in_the_real_daemons(name: str, tmp_path: Path) -> None:
    """Every feature of the goldens (two ASes, aggregation, avoidBuggyIPs, communities, BFD single- and multi-hop,
    timers, passwords, IPv6) passes the daemons' own parsers: ``vtysh --dryrun`` and ``bird -p``."""
    path = GOLDEN / name
    if name.startswith("frr"):
        r = subprocess.run(["vtysh", "--dryrun", "-f", str(path)], capture_output=True, text=True, timeout=60)
    else:
        r = subprocess.run(["bird", "-p", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr
    # the checker itself refuses a broken line (so the pass above means something)
    broken = tmp_path / name
    text = path.read_text()
    broken.write_text(text.replace(" remote-as ", " remote-az ", 1) if name.startswith("frr") else
                      text.replace("passive on;", "passive onn;", 1))
    if name.startswith("frr"):
        r = subprocess.run(["vtysh", "--dryrun", "-f", str(broken)], capture_output=True, text=True, timeout=60)
    else:
        r = subprocess.run(["bird", "-p", "-c", str(broken)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0


# --- variants: per-node ASes (two BGPPeers at one router, split by node selector), and IPv6 --------------------------


def per_node_as_yaml() -> str:
    peers = "".join(f"""---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: rack-{n[-1]}, namespace: metallb-system}}
spec:
  myASN: {asn}
  peerASN: 64513
  peerAddress: {ROUTER}
  holdTime: 9s
  nodeSelectors: [{{matchLabels: {{kubernetes.io/hostname: {n}}}}}]
""" for n, asn in (("node-a", 64521), ("node-b", 64522)))
    base = config_yaml(False)
    start = base.index("---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer")
    end = base.index("---\napiVersion: metallb.io/v1beta1\nkind: BFDProfile")
    return base[:start] + peers + base[end:] + services_yaml()


def ipv6_yaml() -> str:
    out = [f"""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bgppool6, namespace: metallb-system}}
spec: {{addresses: ["2001:db8:91::/124"]}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp6, namespace: metallb-system}}
spec: {{ipAddressPools: [bgppool6]}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: router6, namespace: metallb-system}}
spec: {{myASN: 64512, peerASN: 64513, peerAddress: "{ROUTER6}", holdTime: 9s}}
"""]
    for n in NODES:
        out.append(f"""---
apiVersion: v1
kind: Node
metadata: {{name: {n}, labels: {{kubernetes.io/hostname: {n}}}}}
status:
  addresses: [{{type: InternalIP, address: {NODES[n]}}}, {{type: InternalIP, address: "{NODES6[n]}"}}]
""")
    out += [f"---\n{m.service(name, f'fd00:96::{i + 1}', f'fd00:244::{i + 1}', 'node-a')}\n"
            for i, name in enumerate(SERVICES)]
    return "".join(out)


@pytest.mark.parametrize("vendor", ["frr", "bird"])
@pytest.mark.parametrize("variant", ["per-node-as", "ipv6"])
def test_generated_router_config_variants(lab, vendor: str, variant: str) -> None:
    """Per-node ASes still give ECMP (multipath relax); IPv6 sessions and /128s work the same way."""
    cfg = lab["tmp"] / "cluster.yaml"
    if variant == "ipv6":
        cfg.write_text(ipv6_yaml())
        router, nodes, extra = ROUTER6, NODES6, ["--router-id", ROUTER]  # an IPv6 router still needs an IPv4 ID
    else:
        cfg.write_text(per_node_as_yaml())
        router, nodes, extra = ROUTER, NODES, []
    lab["log"].append(events_of(cfg))
    text = router_config("--log", str(cfg), "--router", router, "--vendor", vendor, *extra)
    if variant == "per-node-as" and vendor == "frr":
        assert " bgp bestpath as-path multipath-relax\n" in text
        assert " remote-as 64521\n" in text and " remote-as 64522\n" in text
    r = _start_router(lab, vendor, text)
    for n in NODES:
        lab["speaker"](n)
    for ip in nodes.values():
        wait_for(lambda ip=ip: r.established(ip), 90, what=f"{vendor} session with {ip} Established")
    want = sorted(nodes.values())
    for p in _prefixes(lab):
        wait_for(lambda p=p: kernel_nexthops(lab["hub"], p) == want, 90, what=f"{p} via both nodes (ECMP)")


def test_live_stream_uses_the_snapshot_and_the_tail(redis_server) -> None:
    """``--redis-url`` folds the snapshot plus the entries after it: with the stream trimmed below the snapshot
    (its first records exist only in the snapshot) the output still equals the offline golden."""
    from events import log as logmod
    from events.position import ZERO
    from reconciler import decisions, fold, snapshot as snapmod, state as statemod

    events = events_of(GOLDEN / "cluster.yaml")
    head, tail = events[:10], events[10:]
    cluster = "routercfg-live"
    lg = stream.StreamLog.from_url(redis_server.url, cluster)
    try:
        pos = lg.append(head)[-1]
        st = fold.fold(head, statemod.new())
        lg.save_snapshot(logmod.Snapshot(pos, snapmod.SNAPSHOT_VERSION, snapmod.dump(st), decisions.state_hash(st)))
        first_of_tail = lg.append(tail)[0]
        lg.client.xtrim(lg.keys.events, minid=str(first_of_tail), approximate=False)
        assert len(lg.read_page(ZERO, 100)) == len(tail)  # the head is gone from the stream
        live = router_config("--redis-url", redis_server.url, "--cluster", cluster, "--router", "10.0.0.1",
                             "--vendor", "frr")
    finally:
        lg.close()
    assert live == (GOLDEN / "frr.conf").read_text()
