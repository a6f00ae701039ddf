"""The core at cluster scale (issue 14): replay of a large cluster's log, Node-event latency, state hash, and the
time from a snapshot to the first node plan. Every figure has a baseline measured in the same run.

What is measured
* **(a) replay throughput**: ``streamlb replay FILE --output json`` (a child process: start-up, reading, Kubernetes
  translation, fold, planning, state hash and the full JSON with the ``bgp`` map written to a file) of a seeded
  watch log of the shape of issue 14 (``benchmarks.data.large_cluster_watch_log``: 500 nodes, 4 BGPPeers, 50
  pools half L2 half BGP, 20,000 Services, 200,000 watch events: ~13 % Node label/condition changes, ~40 %
  EndpointSlice churn, the rest Service creates and deletes). Baseline: ``msgspec.json`` decode-only of the same
  file (read, split into lines, decode every line) — the ceiling of anything that must at least parse its input.
  Also reported: the same replay with ``--omit bgp``.
* **(e) peak RSS of (a)** (the child's ``ru_maxrss``), against a child that only holds every decoded line of the
  same file in memory, and the 1 GiB budget (goal 500 MiB).
* **(b) Node-event latency** at 50, 500 and 2,000 nodes (4 peers, 10,000 Services, incremental planning on, as in
  a daemon): ``fold.apply`` plus ``planning.ensure`` (the re-planning the fold defers to the next read of the
  plan, done at once) time of a Node label change (BGP-speaker label toggled, then back) and of a
  ``NetworkUnavailable`` flip (raised, then cleared) on a random node — per event, the mean of the pair, median
  over the pairs; the sizes take turns so the machine's load falls on all alike. Baseline: the whole-configuration validation over every node (``config.build``),
  which the fold ran on every Node label change before (at the same size). The three sizes must be within 2×.
* **(c) state hash** at 100,000 Services × 2,000 BGP nodes × 4 peers (every node peers with every peer). Baseline:
  the version-1 hash of the expanded node -> peer -> prefix map, measured on a sample of nodes and scaled to all
  2,000 (the expanded map has ~4 × 10^8 entries: it does not fit in memory, which is the point).
* **(d) snapshot -> first node plan** at the same size: ``snapshot.load`` + ``planning.node_plan(node)``. Baseline:
  the same load followed by today's full re-plan (every election re-run: ``planning.rebuild`` without the recorded
  owners) and the same node plan. Both under ``reconciler.runtime.gcpolicy.few_collections`` (what a process
  loading a snapshot should use; the speaker's start-up is helper ``throughput``'s).

``--quick``: 20,000 events / 50 nodes / 2,000 Services for (a), 50/100/200 nodes × 2,000 Services for (b), 5,000
Services × 200 nodes for (c) and (d).

What is not measured: Redis (see bench_stream), the speaker's start-up around the plan (see bench_speaker).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from benchmarks import data
from events import kube, schema
from reconciler import bgpplan, decisions, fold, planning, snapshot
from reconciler import state as statemod
from reconciler.runtime import gcpolicy

NAME = "corescale"
ROOT = Path(__file__).resolve().parents[1]
NS = "metallb-system"


# ----------------------------------------------------------------------------------------------------------------
# (a) + (e)


_LAUNCH = """
import json, os, subprocess, sys, time
argv, out_path, cwd, env = json.loads(sys.argv[1])
with open(out_path, "wb") as out:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, cwd=cwd, env=env)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
print(json.dumps([os.waitstatus_to_exitcode(status), wall, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime,
                  err[-500:].decode(errors="replace")]))
"""


def _child(argv: list[str], out_path: str, cwd: Path | str = ROOT, env: dict | None = None) -> tuple[float, int, float]:
    """Run ``argv`` with stdout to ``out_path``: (wall seconds, peak RSS bytes, CPU seconds).

    Through a small launcher process: a child forked straight from this (large) process would report this process's
    resident size as its own peak (Linux carries the high-water mark across fork and exec)."""
    spec = json.dumps([argv, out_path, str(cwd), env if env is not None else dict(os.environ)])
    got = subprocess.run([sys.executable, "-c", _LAUNCH, spec], capture_output=True, text=True, check=True)
    code, wall, rss, cpu, err = json.loads(got.stdout)
    if code != 0:
        raise RuntimeError(f"{argv[2:5]} exited {code}: {err}")
    return wall, rss, cpu


_PHASES = """
import json, resource, sys, time
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
import reconciler.runtime.cli.app  # what the program loads before the replay starts
from reconciler.runtime import replay
t1 = cpu()
result = replay.replay([sys.argv[1]])
t2 = cpu()
with open(sys.argv[2], "wb") as out:
    result.write_json(out)
t3 = cpu()
print(json.dumps([t1, t2 - t1, t3 - t2]))
"""


def phases(path: str, out_path: str) -> tuple[float, float, float]:
    """CPU seconds of a replay's phases, in a child of its own: start-up (interpreter and imports), input and fold,
    output (final planning, state hash, JSON)."""
    got = subprocess.run([sys.executable, "-c", _PHASES, path, out_path], capture_output=True, text=True, check=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    start, fold_s, out_s = json.loads(got.stdout)
    return start, fold_s, out_s


_HOLD = """
import sys, msgspec
dec = msgspec.json.Decoder()
with open(sys.argv[1], "rb") as f:
    values = [dec.decode(line) for line in f.read().splitlines() if line.strip()]
print(len(values))
"""


BEFORE = "285e30d"  # the last commit before issue 14


def _before_tree(tmp: str) -> str | None:
    """The source tree of commit :data:`BEFORE`, extracted with ``git archive`` (None without git or the commit)."""
    dest = os.path.join(tmp, "before")
    try:
        arch = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE], capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    if arch.returncode != 0:
        return None
    os.makedirs(dest)
    subprocess.run(["tar", "-x", "-C", dest], input=arch.stdout, check=True, timeout=120)
    return dest


def _strip_hash(path: str) -> bytes:
    with open(path, "rb") as f:
        return b"\n".join(ln for ln in f.read().split(b"\n") if not ln.startswith(b'  "state_hash": '))


def before_figure(tmp: str, sample: str, n: int, what: str) -> list[dict]:
    """The same replay by the implementation before issue 14 (pure-Python fast path, as it does not need it)."""
    tree = _before_tree(tmp)
    if tree is None:
        return []
    argv = [sys.executable, "-m", "reconciler", "replay", sample, "--output", "json"]
    env = {**os.environ, "PYTHONPATH": tree, "FASTPATH_NO_EXTENSIONS": "1"}
    old_wall, old_rss, old_cpu = _child(argv, os.path.join(tmp, "before.json"), cwd=tree, env=env)
    wall, rss, cpu = _child(argv, os.path.join(tmp, "now.json"))
    # issue 13 renamed the reason noServingEndpoints to MetalLB's noEndpoints since: the one deliberate difference
    then = _strip_hash(os.path.join(tmp, "before.json")).replace(b'"noServingEndpoints"', b'"noEndpoints"')
    same = then == _strip_hash(os.path.join(tmp, "now.json"))
    assert same, "the replay output differs from the implementation before (state_hash and issue 13's rename aside)"
    return [{
        "name": "replay against the implementation before issue 14", "unit": "events/s", "streamlb": n / wall,
        "baselines": {f"before (commit {BEFORE})": n / old_wall}, "higher_is_better": True,
        "notes": f"{what}; {wall:.1f} s vs {old_wall:.1f} s wall, {cpu:.1f} s vs {old_cpu:.1f} s CPU, peak RSS "
                 f"{rss / 2**20:.0f} vs {old_rss / 2**20:.0f} MiB; outputs byte-identical except state_hash",
    }]


def replay_figures(quick: bool) -> list[dict]:
    n_events, n_nodes, n_services = (20_000, 50, 2_000) if quick else (200_000, 500, 20_000)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_corescale.") as tmp:
        path = os.path.join(tmp, "cluster.jsonl")
        data.write_jsonl(path, data.large_cluster_watch_log(n_events, n_nodes=n_nodes, n_services=n_services))
        size = os.path.getsize(path)
        # decode-only baseline, in this process (best of 2)
        dec = msgspec.json.Decoder()
        best = best_cpu = float("inf")
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            with open(path, "rb") as f:
                n = 0
                for line in f.read().splitlines():
                    if line.strip():
                        dec.decode(line)
                        n += 1
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        decode_rate = n / best
        replay_argv = [sys.executable, "-m", "reconciler", "replay", path, "--output", "json"]
        wall, rss, cpu = _child(replay_argv, os.path.join(tmp, "out.json"))
        out_size = os.path.getsize(os.path.join(tmp, "out.json"))
        wall_omit, rss_omit, _ = _child(replay_argv + ["--omit", "bgp"], os.path.join(tmp, "out-omit.json"))
        _, rss_hold, _ = _child([sys.executable, "-c", _HOLD, path], os.path.join(tmp, "hold.txt"))
        t_start, t_fold, t_out = phases(path, os.path.join(tmp, "out-phases.json"))
        sample = os.path.join(tmp, "sample.jsonl")
        with open(path, "rb") as f, open(sample, "wb") as out:
            for _, line in zip(range(20_000 if not quick else 5_000), f):
                out.write(line)
        before = before_figure(tmp, sample, 20_000 if not quick else 5_000,
                               "the first 20,000 events of the log above" if not quick else "its first 5,000 events")
    rate = n / wall
    scale = f"{n:,} watch events ({size / 1e6:.0f} MB), {n_nodes} nodes, 4 peers, 50 pools, {n_services:,} Services"
    rows.append({
        "name": "replay of a large cluster log (--output json, full bgp map)", "unit": "events/s",
        "streamlb": rate, "baselines": {"msgspec decode-only of the same file": decode_rate,
                                        "replay --omit bgp": n / wall_omit},
        "higher_is_better": True,
        "notes": f"{scale}; replay {wall:.1f} s wall (child process incl. start-up) printing {out_size / 1e6:.0f} MB "
                 f"of JSON = {rate / decode_rate:.3f}× the decode-only rate (done when ≥ 0.10×, goal 0.20×); "
                 f"in CPU time (child {cpu:.1f} s vs decode-only {best_cpu:.2f} s; robust to the machine's load): "
                 f"{best_cpu / cpu:.3f}×; --omit bgp {wall_omit:.1f} s; CPU by phase (a separate run): start-up "
                 f"{t_start:.2f} s, input + fold {t_fold:.2f} s, output (planning, hash, JSON) {t_out:.2f} s",
    })
    rows += before
    rows.append({
        "name": "replay of a large cluster log, per CPU second", "unit": "events/CPU-s", "streamlb": n / cpu,
        "baselines": {"msgspec decode-only of the same file": n / best_cpu}, "higher_is_better": True,
        "notes": f"{scale}; the same runs as above counted in CPU time (user + system of the replay child, process "
                 f"time of the decode loop), which a shared machine's load distorts less than wall time",
    })
    rows.append({
        "name": "peak RSS of the large-cluster replay", "unit": "MiB", "streamlb": rss / 2**20,
        "baselines": {"budget (1 GiB)": 1024.0, "goal (500 MiB)": 500.0,
                      "decode-only child holding every line": rss_hold / 2**20,
                      "replay --omit bgp": rss_omit / 2**20},
        "higher_is_better": False, "plot": "bars",
        "notes": f"{scale}; ru_maxrss of the replay child",
    })
    return rows


# ----------------------------------------------------------------------------------------------------------------
# a cluster as native events (b, c, d)


def _translate(watch: list[dict]) -> list[schema.Event]:
    out: list[schema.Event] = []
    for w in watch:
        obj = kube.translate(w["object"])
        assert not isinstance(obj, kube.Ignored), obj
        out.append(schema.K8sUpsert(obj=obj))
    return out


def cluster(n_nodes: int, n_services: int, n_pools: int = 50, all_bgp: bool = False, seed: int = 7) -> tuple[
        statemod.State, list[str]]:
    """The configuration of the generator (``all_bgp``: one BGPAdvertisement for every node and every peer for every
    node), ``n_nodes`` Nodes and ``n_services`` Services with an EndpointSlice each (1–3 ready endpoints)."""
    rng = random.Random(seed)
    watch = data.cluster_config(n_pools=n_pools, n_peers=4)
    if all_bgp:
        watch = [w for w in watch if w["object"]["kind"] not in ("BGPAdvertisement", "BGPPeer")]
        watch.append(data._w("ADDED", data._metallb("BGPAdvertisement", "bgp", {
            "ipAddressPoolSelectors": [{"matchLabels": {"mode": "bgp"}}], "communities": ["64512:100"]})))
        for p in range(4):
            watch.append(data._w("ADDED", data._metallb("BGPPeer", f"tor-{p}", {
                "myASN": 64512, "peerASN": 64513 + p, "peerAddress": f"192.0.2.{p + 1}"}, version="v1beta2")))
    pool_size = 1 << max(10, (2 * n_services // max(1, n_pools)).bit_length())
    # bigger pools when needed: one /N per pool
    if pool_size > 1024:
        for w in watch:
            if w["object"]["kind"] == "IPAddressPool":
                i = int(w["object"]["metadata"]["name"].split("-")[1])
                base = ipaddress.IPv4Address("10.0.0.0") + i * pool_size
                w["object"]["spec"]["addresses"] = [f"{base}/{32 - (pool_size - 1).bit_length()}", f"fd00:{i:x}::/112"]
    nodes = [f"node-{n:04d}" for n in range(n_nodes)]
    for i, n in enumerate(nodes):
        watch.append(data._w("ADDED", data._node_obj(n, {
            "kubernetes.io/hostname": n, "zone": data.NODE_ZONES[i % 4], "bgp-speaker": "true",
            "role": "edge" if i % 10 == 0 else "worker"}, False)))
    events = _translate(watch)
    for idx in range(n_services):
        pool = f"pool-{(idx * 7) % n_pools:03d}"
        events += _translate([data._w("ADDED", data._svc_obj(idx, pool, local=idx % 3 == 0, dual=False)),
                              data._w("ADDED", data._slice_obj(rng, idx, nodes, 0))])
    st = fold.fold(events, statemod.new())
    assert st.config_valid, st.config_errors[:3]
    return st, nodes


# ----------------------------------------------------------------------------------------------------------------
# (b)


def node_latency(quick: bool) -> list[dict]:
    sizes = [50, 100, 200] if quick else [50, 500, 2_000]
    n_services = 2_000 if quick else 10_000
    n_events = 100 if quick else 300
    label_s: list[list[float]] = []
    cond_s: list[list[float]] = []
    full_s: list[list[float]] = []

    class Cluster:
        def __init__(self, n_nodes: int) -> None:
            self.n = n_nodes
            self.st, self.nodes = cluster(n_nodes, n_services)
            planning.ensure(self.st)  # a daemon's state: incremental planning on
            self.rng = random.Random(n_nodes)
            self.labels = {n: dict(self.st.objects["Node"][("", n)].labels) for n in self.nodes}
            self.down = {n: False for n in self.nodes}
            self.times: dict[str, list[float]] = {"label": [], "cond": []}

        def event(self, kind: str) -> None:
            """A change and its reversal on one random node (a label set and removed, a condition raised and
            cleared), both timed: the figure is their mean, so losing and regaining count alike at every size."""
            n = self.nodes[self.rng.randrange(self.n)]
            spent = 0.0
            for _ in range(2):
                if kind == "label":
                    lab = self.labels[n]
                    lab["bgp-speaker"] = "false" if lab["bgp-speaker"] == "true" else "true"
                else:
                    self.down[n] = not self.down[n]
                e = schema.K8sUpsert(obj=schema.Node(name=n, labels=tuple(sorted(self.labels[n].items())),
                                                     network_unavailable=self.down[n]))
                t0 = time.perf_counter()
                fold.apply(self.st, e)
                planning.ensure(self.st)  # the planning the event deferred, done as the next plan read does it
                spent += time.perf_counter() - t0
            self.times[kind].append(spent / 2)

    clusters = [Cluster(n) for n in sizes]
    for _ in range(n_events):  # the sizes take turns, so a shared machine's load falls on all of them alike
        for c in clusters:
            c.event("label")
            c.event("cond")
    for c in clusters:
        assert c.st.config_valid
        t0 = time.perf_counter()
        reps = 3
        for _ in range(reps):
            fold.build_config(c.st.objects)
        full = (time.perf_counter() - t0) / reps
        label_s.append([c.n, statistics.median(c.times["label"]) * 1e3])
        cond_s.append([c.n, statistics.median(c.times["cond"]) * 1e3])
        full_s.append([c.n, full * 1e3])
    spread_label = max(y for _, y in label_s) / min(y for _, y in label_s)
    spread_cond = max(y for _, y in cond_s) / min(y for _, y in cond_s)
    big = sizes[-1]
    return [
        {
            "name": f"Node label change, per event at {big:,} nodes", "unit": "ms",
            "streamlb": label_s[-1][1],
            "baselines": {f"same at {sizes[0]} nodes": label_s[0][1], f"same at {sizes[1]} nodes": label_s[1][1],
                          f"whole-configuration validation at {big:,} nodes": full_s[-1][1]},
            "higher_is_better": False,
            "notes": f"4 peers, {n_services:,} Services, median of {n_events} change+reversal pairs, each event "
                     f"planned at once; max/min over {'/'.join(str(s) for s in sizes)} nodes = {spread_label:.2f}× "
                     f"(done when ≤ 2×)",
            "series": {"label change": label_s, "NetworkUnavailable flip": cond_s,
                       "whole-configuration validation (before)": full_s},
            "series_x": "nodes", "series_y": "ms per event",
        },
        {
            "name": f"Node condition flip, per event at {big:,} nodes", "unit": "ms", "streamlb": cond_s[-1][1],
            "baselines": {f"same at {sizes[0]} nodes": cond_s[0][1], f"same at {sizes[1]} nodes": cond_s[1][1]},
            "higher_is_better": False,
            "notes": f"NetworkUnavailable flips; max/min over the sizes = {spread_cond:.2f}×, at {big:,} vs "
                     f"{sizes[0]} nodes = {cond_s[-1][1] / cond_s[0][1]:.2f}× (done when ≤ 2×: no growth with the "
                     f"cluster; a flip re-elects the L2 IPs the node owns, about {n_services:,} / nodes of them, "
                     f"so the cost falls as nodes are added)",
        },
    ]


# ----------------------------------------------------------------------------------------------------------------
# (c) + (d)


def _expanded_hash(st: statemod.State, sample: list[str]) -> float:
    """Seconds of the version-1 hash's BGP part for ``sample``: the node -> peer -> prefix map as version 1 built it
    (per kind of node, then a fresh list per node with its ``Local`` Services merged in), msgpack with sorted keys,
    SHA-256."""
    enc = msgspec.msgpack.Encoder(order="sorted")
    t0 = time.perf_counter()
    expanded = _bgp_map_v1(st, sample)
    hashlib.sha256(enc.encode(expanded)).hexdigest()
    return time.perf_counter() - t0


def _bgp_map_v1(st: statemod.State, only: list[str]) -> dict:
    """The ``bgp`` map as built before issue 14 (per-Service ``service_on_node`` calls, a fresh list per node),
    restricted to ``only``."""
    plan = planning.ensure(st)
    local_idx: dict[str, list] = {}
    cluster_keys = []
    for key in sorted(plan.bgp):
        rec = plan.bgp[key]
        if rec.local_only:
            for n in sorted(rec.local):
                local_idx.setdefault(n, []).append(key)
        else:
            cluster_keys.append(key)
    groups: dict = {}
    out = {}
    for node in sorted(only):
        info = plan.nodes.get(node)
        if info is None or info.problem is not None:
            continue
        sig = (info.bgp, info.peers)
        if sig not in groups:
            entries = [e for key in cluster_keys for e in _v1_for_node(plan, key, node, info)]
            raw = bgpplan.merge_raw(entries)
            order = sorted(raw)
            groups[sig] = (raw, order, {k: _v1_item(k, raw[k]) for k in order})
        raw, order, items = groups[sig]
        extra = [e for key in local_idx.get(node, ()) for e in _v1_for_node(plan, key, node, info)]
        overrides = {}
        keys = order
        if extra:
            touched = bgpplan.merge_raw(extra, into={k: raw[k] for k in {(e[0], e[1]) for e in extra} if k in raw})
            keys = sorted(set(order) | set(touched))
            overrides = {k: _v1_item(k, v) for k, v in touched.items()}
        peers: dict[str, list] = {}
        for k in keys:  # a fresh list per node and peer, as version 1 built them
            peers.setdefault(k[0], []).append(overrides.get(k) or items[k])
        out[node] = peers
    return out


def _v1_item(key, value) -> dict:
    _, lp, cs = value
    return {"prefix": bgpplan.prefix_text(key[1]), "local_pref": lp or None,
            "communities": sorted(cs, key=bgpplan.community_key)}


def _v1_for_node(plan, key, node, info) -> list:
    rec = plan.bgp[key]
    return bgpplan.service_on_node(
        rec.local_only, rec.ips, rec.families, rec.ads, rec.matches,
        lambda ad: (ad.obj.namespace, ad.obj.name) in info.bgp, info.peers, info.problem, rec.anywhere,
        node in rec.local)[1]


def hash_and_snapshot(quick: bool) -> list[dict]:
    n_services, n_nodes = (5_000, 200) if quick else (100_000, 2_000)
    t0 = time.perf_counter()
    st, nodes = cluster(n_nodes, n_services, all_bgp=True)
    t_build = time.perf_counter() - t0
    blob0 = snapshot.dump(st, plan=False)
    # (d) baseline: load + today's full re-plan (every election) + the first node plan; both sides under the GC
    # policy a loading process uses (reconciler.runtime.gcpolicy)
    t0 = time.perf_counter()
    with gcpolicy.few_collections():
        base = snapshot.load(blob0)
        base.plan = None
        planning.ensure(base)
        planning.node_plan(base, nodes[0])
    t_full = time.perf_counter() - t0
    # (c) the state hash (v2), twice, and the expanded-map hash on a sample of nodes
    t0 = time.perf_counter()
    decisions.state_hash(base)
    t_hash = time.perf_counter() - t0
    t0 = time.perf_counter()
    h2 = decisions.state_hash(base)
    t_hash = min(t_hash, time.perf_counter() - t0)
    # t(k nodes) = shared part + k × per node: two sample sizes separate them (best of 2), then scaled to every node
    k1, k2 = 2, 8
    t1 = min(_expanded_hash(base, nodes[:: n_nodes // k1][:k1]) for _ in range(2))
    t2 = min(_expanded_hash(base, nodes[:: n_nodes // k2][:k2]) for _ in range(2))
    per_node = max(t2 - t1, 1e-9) / (k2 - k1)
    t_expanded = max(t1 - k1 * per_node, 0.0) + per_node * n_nodes
    blob = snapshot.dump(base)
    # (d) streamlb: load (seeded with the recorded owners) + the first node plan
    t0 = time.perf_counter()
    with gcpolicy.few_collections():
        fresh = snapshot.load(blob)
        first = planning.node_plan(fresh, nodes[0])
    t_first = time.perf_counter() - t0
    assert first == planning.node_plan(base, nodes[0])
    assert decisions.state_hash(fresh) == h2
    scale = f"{n_services:,} Services × {n_nodes:,} nodes × 4 peers"
    return [
        {
            "name": "state hash", "unit": "s", "streamlb": t_hash,
            "baselines": {"expanded-map hash (v1, scaled from a sample of nodes)": t_expanded},
            "higher_is_better": False,
            "notes": f"{scale}, every node BGP; v1 measured on {k1} and {k2} nodes ({per_node * 1e3:.0f} ms per "
                     f"node) and scaled to {n_nodes:,}; done when ≤ 1 s",
        },
        {
            "name": "snapshot -> first node plan", "unit": "s", "streamlb": t_first,
            "baselines": {"load + full re-plan (before)": t_full}, "higher_is_better": False,
            "notes": f"{scale}; snapshot {len(blob) / 1e6:.0f} MB; building the state by folding took "
                     f"{t_build:.0f} s; done when ≤ 10 s",
        },
    ]


def run(quick: bool) -> list[dict]:
    return replay_figures(quick) + node_latency(quick) + hash_and_snapshot(quick)


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(row)
