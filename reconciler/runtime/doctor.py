"""``streamlb doctor``: live checks of a running installation, and the L2 subnet check ``explain`` and the leader use.

Split in two so the checks are testable without Redis:

* :func:`gather` reads everything once from a live cluster into an :class:`Evidence` (the folded state from the
  snapshot and the tail, heartbeat keys, the speakers' status keys, the leader lock, stream heads, dead letters,
  ACL dry runs);
* :func:`run_checks` turns an :class:`Evidence` into one :class:`CheckResult` per check — pure, no I/O, no clock
  (``Evidence.now`` is the wall clock at gathering time).

Every check has a stable code; a finding carries the evidence (node, peer, IP, since when) and a fix sentence. A
check that cannot be made (no data, no permission) says ``unknown`` with a note and is not a finding.

The L2 subnet check (:func:`subnet_verdict`) needs the owner's interface addresses, which only the speakers know
(their status keys). They never enter the log: replay stays deterministic and, without speaker data, the answer is
``unknown``, never a guess.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from events.position import Position

# --- codes (stable: scripts match on them) ---------------------------------------------------------------------------

SPEAKER_NO_HEARTBEAT = "SPEAKER_NO_HEARTBEAT"
BGP_SESSION_DOWN = "BGP_SESSION_DOWN"
BFD_SESSION_DOWN = "BFD_SESSION_DOWN"
CONFIG_INVALID = "CONFIG_INVALID"
POOL_NEARLY_EXHAUSTED = "POOL_NEARLY_EXHAUSTED"
L2_IP_OUTSIDE_SUBNET = "L2_IP_OUTSIDE_SUBNET"
ADDRESS_CONFLICT = "ADDRESS_CONFLICT"
LEADER_MISSING = "LEADER_MISSING"
REPLICA_LAGGING = "REPLICA_LAGGING"
SNAPSHOT_STALE = "SNAPSHOT_STALE"
DEAD_LETTERS = "DEAD_LETTERS"
EXCESS_RIGHTS = "EXCESS_RIGHTS"

TITLES = {
    SPEAKER_NO_HEARTBEAT: "every node's speaker is alive (heartbeat key present)",
    BGP_SESSION_DOWN: "BGP sessions are Established",
    BFD_SESSION_DOWN: "BFD sessions are Up",
    CONFIG_INVALID: "the MetalLB configuration is valid",
    POOL_NEARLY_EXHAUSTED: "address pools are below 90 % use",
    L2_IP_OUTSIDE_SUBNET: "L2 IPs lie in a subnet of the owner's announcing interfaces",
    ADDRESS_CONFLICT: "no other host answers ARP/NDP for an IP streamlb announces",
    LEADER_MISSING: "a `streamlb run` replica holds the leader lock",
    REPLICA_LAGGING: "the leader and the speakers keep up with the event log",
    SNAPSHOT_STALE: "the snapshot is recent",
    DEAD_LETTERS: "no dead-lettered events",
    EXCESS_RIGHTS: "Redis users have no more rights than their role needs",
}

ROLE_USERS = ("streamlb-producer", "streamlb-reconciler", "streamlb-speaker")


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc).timestamp()
    except ValueError:
        return None


@dataclass
class Finding:
    code: str
    message: str
    fix: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "evidence": self.evidence, "fix": self.fix}


@dataclass
class CheckResult:
    code: str
    status: str  # "ok", "finding" or "unknown"
    findings: list[Finding] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "title": TITLES[self.code], "status": self.status, "note": self.note,
                "findings": [f.to_json() for f in self.findings]}


@dataclass
class Thresholds:
    pool_use: float = 0.9
    lag_s: float = 30.0
    snapshot_age_s: float = 600.0


@dataclass
class Evidence:
    """What :func:`run_checks` looks at. Positions are stream IDs (their ``ms`` is the append time)."""

    now: float  # wall clock, seconds
    state: Any = None  # folded reconciler state (None: the log is empty)
    heartbeats: set[str] = field(default_factory=set)
    statuses: dict[str, dict] = field(default_factory=dict)
    leader: str | None = None
    head: Position | None = None  # newest event entry
    applied_pos: Position | None = None  # what the folded state includes
    leader_pos: Position | None = None  # position of the leader's newest decisions entry
    leader_next: Position | None = None  # the first event after leader_pos (None: caught up)
    snapshot_pos: Position | None = None
    snapshot_next: Position | None = None  # the first event after the snapshot (None: snapshot is complete)
    first_event: Position | None = None
    speaker_next: dict[str, Position | None] = field(default_factory=dict)  # node -> first event after its position
    deadletters: int = 0
    deadletter_newest: tuple[str, str] | None = None  # (entry id, reason)
    acl: dict[str, list[tuple[str, bool | None, str]]] | None = None  # user -> (command, allowed, detail)
    acl_note: str = ""


# --- the L2 subnet check ---------------------------------------------------------------------------------------------


def subnet_verdict(ip: str, allowed: tuple[str, ...] | list[str], node: str | None,
                   status: dict | None) -> dict[str, Any]:
    """Does one of ``node``'s announcing interfaces have a subnet containing ``ip``?

    ``allowed`` is the L2Advertisements' ``interfaces`` for this IP on this node (empty: every interface the speaker
    may use). ``status`` is the node's speaker status (``interfaces``: name, mac, addresses as CIDR). Returns
    ``verdict`` ``yes`` / ``no`` / ``unknown``, the interfaces and subnets looked at, the match, and a sentence.
    """
    out: dict[str, Any] = {"verdict": "unknown", "node": node, "interfaces": [], "subnets": [], "match": None}
    if node is None:
        out["why"] = "no node announces this IP"
        return out
    if not status or not status.get("interfaces_known") or not isinstance(status.get("interfaces"), list):
        out["why"] = f"no interface data from the speaker on {node}"
        return out
    addr = ipaddress.ip_address(ip)
    ifaces = [i for i in status["interfaces"] if isinstance(i, dict)]
    chosen = [i for i in ifaces if not allowed or i.get("name") in allowed]
    out["interfaces"] = [i.get("name") for i in chosen]
    if not chosen:
        out["verdict"] = "no"
        want = ", ".join(allowed) if allowed else "any"
        out["why"] = f"{node} has none of the interfaces the L2Advertisement allows ({want})"
        return out
    for i in chosen:
        for cidr in i.get("addresses") or ():
            try:
                net = ipaddress.ip_interface(cidr).network
            except ValueError:
                continue
            if net.version != addr.version:
                continue
            if net.is_link_local and not addr.is_link_local:
                continue
            out["subnets"].append(f"{i.get('name')}:{net}")
            if addr in net and out["match"] is None:
                out["match"] = f"{i.get('name')} {cidr}"
    if out["match"] is not None:
        out["verdict"] = "yes"
        out["why"] = f"{ip} is in {out['match']} on {node}"
    else:
        out["verdict"] = "no"
        nets = ", ".join(out["subnets"]) or f"no IPv{addr.version} subnet"
        out["why"] = (f"{ip} is in no subnet of {node}'s announcing interfaces ({nets}): "
                      f"ARP/NDP for it never reaches {node}")
    return out


def l2_subnets(state: Any, statuses: dict[str, dict], keys: list[str] | None = None) -> dict[str, dict[str, dict]]:
    """Service key -> L2 IP -> :func:`subnet_verdict` for every Service announced in layer 2 (or only ``keys``)."""
    from reconciler import planning

    out: dict[str, dict[str, dict]] = {}
    plans: dict[str, Any] = {}
    for key in sorted(keys if keys is not None else state.services):
        owners = planning.l2_map(state, key)
        for ip in sorted(owners):
            node = owners[ip]["node"]
            allowed: tuple[str, ...] = ()
            st = statuses.get(node) if node else None
            if node is not None and st and st.get("interfaces_known"):  # the node plan only when it can be judged
                if node not in plans:
                    plans[node] = planning.node_plan(state, node)
                allowed = plans[node].l2.get(ip, ())
            out.setdefault(key, {})[ip] = subnet_verdict(ip, allowed, node, st)
    return out


# --- checks ----------------------------------------------------------------------------------------------------------


def _ago(ev: Evidence, t: float | None) -> str:
    if t is None:
        return "unknown"
    return f"{iso(t)} ({max(0, int(ev.now - t))} s ago)"


def _nodes(state: Any) -> list[str]:
    if state is None:
        return []
    return sorted(n for (_, n) in state.objects.get("Node", {}))


def check_heartbeats(ev: Evidence) -> CheckResult:
    r = CheckResult(SPEAKER_NO_HEARTBEAT, "ok")
    down = set(getattr(ev.state, "speakers_down", ()) or ())
    for node in sorted(set(_nodes(ev.state)) | set(ev.statuses)):
        if node in ev.heartbeats:
            continue
        st = ev.statuses.get(node)
        last = parse_iso(st.get("written_at")) if st else None
        fold = "down" if node in down else "up"
        r.findings.append(Finding(
            SPEAKER_NO_HEARTBEAT,
            f"node {node}: no speaker heartbeat" + ("" if fold == "down" else " although the log still counts it "
                                                    "up (no `streamlb run` replica noticed yet)"),
            f"Start or restart the speaker on {node} (the DaemonSet pod) and check its logs; until it runs, "
            f"{node} announces nothing.",
            {"node": node, "fold": fold, "status_key": st is not None, "last_status": _ago(ev, last)},
        ))
    r.status = "finding" if r.findings else "ok"
    return r


def _alive_statuses(ev: Evidence) -> dict[str, dict]:
    return {n: s for n, s in sorted(ev.statuses.items()) if n in ev.heartbeats}


def check_bgp(ev: Evidence) -> CheckResult:
    r = CheckResult(BGP_SESSION_DOWN, "ok")
    for node, st in _alive_statuses(ev).items():
        for peer, p in sorted((st.get("peers") or {}).items()):
            if not isinstance(p, dict) or p.get("state") == "Established":
                continue
            r.findings.append(Finding(
                BGP_SESSION_DOWN,
                f"node {node}: BGP session to {peer} ({p.get('address')}) is {p.get('state')}",
                f"Check that the router at {p.get('address')} is up, has {node} configured as a neighbor with the "
                "right AS numbers (`streamlb router-config` generates it) and that TCP port 179 is reachable.",
                {"node": node, "peer": peer, "address": p.get("address"), "state": p.get("state"),
                 "since": p.get("since") or "unknown", "last_error": p.get("last_error")},
            ))
    r.status = "finding" if r.findings else "ok"
    return r


def _bfd_sessions(st: dict) -> list[tuple[str, dict]]:
    raw = st.get("bfd")
    if isinstance(raw, dict):
        return [(str(k), v) for k, v in sorted(raw.items()) if isinstance(v, dict)]
    if isinstance(raw, list):
        return [(str(v.get("peer") or v.get("name") or i), v) for i, v in enumerate(raw) if isinstance(v, dict)]
    return []


def check_bfd(ev: Evidence) -> CheckResult:
    r = CheckResult(BFD_SESSION_DOWN, "ok")
    for node, st in _alive_statuses(ev).items():
        for peer, s in _bfd_sessions(st):
            state = str(s.get("state", "unknown"))
            if state.lower() == "up":
                continue
            r.findings.append(Finding(
                BFD_SESSION_DOWN, f"node {node}: BFD session with {peer} is {state}",
                f"Check the router's BFD configuration for {node} (same intervals as the BGPPeer's bfdProfile) "
                "and that UDP ports 3784/4784 pass.",
                {"node": node, "peer": peer, "address": s.get("peer"), "state": state,
                 "diagnostic": s.get("diagnostic"), "since": s.get("since") or "unknown"},
            ))
    r.status = "finding" if r.findings else "ok"
    return r


def check_config(ev: Evidence) -> CheckResult:
    st = ev.state
    if st is None:
        return CheckResult(CONFIG_INVALID, "unknown", note="the event log is empty")
    if st.config_valid:
        return CheckResult(CONFIG_INVALID, "ok")
    errs = list(st.config_errors)
    return CheckResult(CONFIG_INVALID, "finding", [Finding(
        CONFIG_INVALID, "the MetalLB configuration is invalid; the previous valid one stays in force: "
        + "; ".join(errs[:3]) + (f" (+{len(errs) - 3} more)" if len(errs) > 3 else ""),
        "Fix the objects named in the errors (kubectl edit ...); `streamlb replay` on an export shows the errors "
        "offline.",
        {"errors": errs, "since": str(ev.applied_pos) if ev.applied_pos else "unknown"},
    )])


def check_pools(ev: Evidence, th: Thresholds) -> CheckResult:
    if ev.state is None:
        return CheckResult(POOL_NEARLY_EXHAUSTED, "unknown", note="the event log is empty")
    from reconciler.runtime.kube.status import pool_counts

    r = CheckResult(POOL_NEARLY_EXHAUSTED, "ok")
    for name, c in sorted(pool_counts(ev.state).items()):
        for fam in ("IPv4", "IPv6"):
            used, free = c[f"assigned{fam}"], c[f"available{fam}"]
            cap = used + free
            if cap == 0 or used / cap < th.pool_use:
                continue
            r.findings.append(Finding(
                POOL_NEARLY_EXHAUSTED, f"pool {name}: {used} of {cap} {fam} addresses in use ({100 * used // cap} %)",
                f"Add addresses to IPAddressPool {name} (spec.addresses) or another pool before new Services stay "
                "without an IP.",
                {"pool": name, "family": fam, "assigned": used, "capacity": cap},
            ))
    r.status = "finding" if r.findings else "ok"
    return r


def check_subnets(ev: Evidence) -> CheckResult:
    if ev.state is None:
        return CheckResult(L2_IP_OUTSIDE_SUBNET, "unknown", note="the event log is empty")
    r = CheckResult(L2_IP_OUTSIDE_SUBNET, "ok")
    unknown = []
    for key, ips in l2_subnets(ev.state, ev.statuses).items():
        for ip, v in ips.items():
            if v["verdict"] == "unknown" and v["node"] is not None:
                unknown.append(f"{ip} ({v['node']})")
            if v["verdict"] != "no":
                continue
            r.findings.append(Finding(
                L2_IP_OUTSIDE_SUBNET, f"{key}: {v['why']}",
                "Use an IPAddressPool inside the nodes' subnet for layer 2 (or announce this pool with BGP), or "
                "restrict the L2Advertisement's interfaces/nodeSelectors to nodes on that subnet.",
                {"service": key, "ip": ip, "node": v["node"], "interfaces": v["interfaces"], "subnets": v["subnets"]},
            ))
    r.status = "finding" if r.findings else "ok"
    if unknown:
        r.note = "unknown (no speaker interface data): " + ", ".join(unknown[:10])
    return r


def check_conflicts(ev: Evidence) -> CheckResult:
    r = CheckResult(ADDRESS_CONFLICT, "ok")
    probing = False
    failing = []
    for node, st in _alive_statuses(ev).items():
        probing = probing or bool(st.get("conflict_probe"))
        if st.get("conflict_probe_error"):
            failing.append(f"{node}: {st['conflict_probe_error']}")
        for c in st.get("conflicts") or ():
            if not isinstance(c, dict):
                continue
            r.findings.append(Finding(
                ADDRESS_CONFLICT,
                f"{c.get('ip')}: announced by {node} but host {c.get('mac')} also answers on {c.get('interface')}",
                f"Find the host with MAC {c.get('mac')} (switch MAC table) and remove {c.get('ip')} from it, or "
                "exclude the address from the pool (avoid it in spec.addresses).",
                {"ip": c.get("ip"), "node": node, "other_mac": c.get("mac"), "interface": c.get("interface"),
                 "since": c.get("first_seen"), "last_seen": c.get("last_seen")},
            ))
    r.status = "finding" if r.findings else "ok"
    if not probing and not r.findings:
        r.note = "no speaker runs conflict probes (--no-conflict-probe)" if ev.statuses else "no speaker status"
        r.status = "unknown"
    elif failing:
        r.note = "probes failing on " + "; ".join(failing)
        r.status = r.status if r.findings else "unknown"
    return r


def check_leader(ev: Evidence) -> CheckResult:
    if ev.leader is not None:
        return CheckResult(LEADER_MISSING, "ok", note=f"leader: {ev.leader}")
    if ev.head is None:
        return CheckResult(LEADER_MISSING, "unknown", note="the event log is empty")
    return CheckResult(LEADER_MISSING, "finding", [Finding(
        LEADER_MISSING, "no `streamlb run` replica holds the leader lock: nothing writes decisions, snapshots, "
        "status or liveness events",
        "Start `streamlb run` (the controller Deployment) and check its logs.", {},
    )])


def _behind(ev: Evidence, nxt: Position | None) -> float | None:
    """Seconds the oldest entry not yet applied has waited (None: nothing waits)."""
    if nxt is None:
        return None
    return max(0.0, ev.now - nxt.ms / 1000)


def check_lag(ev: Evidence, th: Thresholds) -> CheckResult:
    r = CheckResult(REPLICA_LAGGING, "ok")
    if ev.leader is not None:
        waited = _behind(ev, ev.leader_next)
        if waited is not None and waited >= th.lag_s:
            r.findings.append(Finding(
                REPLICA_LAGGING, f"leader {ev.leader} has not published decisions for entries waiting "
                f"{int(waited)} s", "Check the `streamlb run` leader's CPU and logs (a slow or stuck fold).",
                {"replica": ev.leader, "position": str(ev.leader_pos), "head": str(ev.head),
                 "since": iso(ev.leader_next.ms / 1000) if ev.leader_next else None},
            ))
    for node, nxt in sorted(ev.speaker_next.items()):
        if node not in ev.heartbeats:
            continue
        waited = _behind(ev, nxt)
        if waited is not None and waited >= th.lag_s:
            r.findings.append(Finding(
                REPLICA_LAGGING, f"speaker on {node} is {int(waited)} s behind the event log",
                f"Check the speaker on {node}: CPU, its connection to Redis (log_up in `streamlb status`).",
                {"node": node, "position": ev.statuses.get(node, {}).get("position"), "head": str(ev.head),
                 "since": iso(nxt.ms / 1000) if nxt else None},
            ))
    r.status = "finding" if r.findings else "ok"
    return r


def check_snapshot(ev: Evidence, th: Thresholds) -> CheckResult:
    if ev.head is None:
        return CheckResult(SNAPSHOT_STALE, "unknown", note="the event log is empty")
    oldest = ev.snapshot_next if ev.snapshot_pos is not None else ev.first_event
    waited = _behind(ev, oldest)
    if waited is None or waited < th.snapshot_age_s:
        note = f"snapshot at {ev.snapshot_pos}" if ev.snapshot_pos else "no snapshot yet"
        return CheckResult(SNAPSHOT_STALE, "ok", note=note)
    return CheckResult(SNAPSHOT_STALE, "finding", [Finding(
        SNAPSHOT_STALE, f"events appended {int(waited)} s ago are still not in a snapshot"
        + ("" if ev.snapshot_pos else " (there is no snapshot)"),
        "Check that a `streamlb run` leader runs and can write streamlb:{c}:snapshot (its logs, Redis memory and "
        "ACL); restarts replay the whole tail until then.",
        {"snapshot": str(ev.snapshot_pos) if ev.snapshot_pos else None, "head": str(ev.head),
         "since": iso(oldest.ms / 1000) if oldest else None},
    )])


def check_deadletters(ev: Evidence) -> CheckResult:
    if not ev.deadletters:
        return CheckResult(DEAD_LETTERS, "ok")
    pos, reason = ev.deadletter_newest or ("?", "?")
    return CheckResult(DEAD_LETTERS, "finding", [Finding(
        DEAD_LETTERS, f"{ev.deadletters} event(s) were dead-lettered; newest {pos}: {reason}",
        "Inspect them with `streamlb events deadletters`, fix the producer that wrote them, then delete the "
        "streamlb:{c}:deadletter stream.",
        {"count": ev.deadletters, "newest": pos, "reason": reason,
         "since": iso(Position.parse(pos).ms / 1000) if pos != "?" else None},
    )])


def check_rights(ev: Evidence) -> CheckResult:
    if ev.acl is None:
        return CheckResult(EXCESS_RIGHTS, "unknown", note=ev.acl_note or "cannot check")
    r = CheckResult(EXCESS_RIGHTS, "ok", note=ev.acl_note)
    for user, rows in sorted(ev.acl.items()):
        for cmd, allowed, _detail in rows:
            if allowed:
                r.findings.append(Finding(
                    EXCESS_RIGHTS, f"Redis user {user} may run `{cmd}`, which its role never needs",
                    "Load deploy/redis/users.acl (rendered for this cluster name) and give each component only its "
                    "role's user (README \"Least privilege\").",
                    {"user": user, "command": cmd},
                ))
    r.status = "finding" if r.findings else "ok"
    return r


def run_checks(ev: Evidence, th: Thresholds | None = None) -> list[CheckResult]:
    th = th or Thresholds()
    return [
        check_heartbeats(ev), check_bgp(ev), check_bfd(ev), check_config(ev), check_pools(ev, th),
        check_subnets(ev), check_conflicts(ev), check_leader(ev), check_lag(ev, th), check_snapshot(ev, th),
        check_deadletters(ev), check_rights(ev),
    ]


def report(results: list[CheckResult]) -> dict[str, Any]:
    findings = sum(len(r.findings) for r in results)
    return {"healthy": findings == 0, "findings": findings, "checks": [r.to_json() for r in results]}


# --- gathering from a live cluster ------------------------------------------------------------------------------------


def forbidden_commands(cluster: str) -> dict[str, list[list[str]]]:
    """Per role user, commands its role must not be able to run (ACL DRYRUN probes; nothing is executed)."""
    k = f"streamlb:{{{cluster}}}"
    common = [["FLUSHALL"], ["CONFIG", "SET", "appendonly", "no"], ["ACL", "SETUSER", "streamlb-doctor-probe"]]
    return {
        "streamlb-producer": [["XADD", f"{k}:decisions", "*", "d", "x"], ["HSET", f"{k}:snapshot", "pos", "0-0"],
                              ["SET", f"{k}:leader", "x"], ["SET", f"{k}:speaker:x", "1"], *common],
        # (DEL is not probed: the reconciler deletes its leader lock, and Redis 7.0 key patterns cannot grant DEL on
        # one key of the cluster without the others)
        "streamlb-reconciler": [["SET", f"{k}:speaker:x", "1"], ["SET", f"{k}:status:x", "{}"], *common],
        "streamlb-speaker": [["XADD", f"{k}:events", "*", "e", "x", "v", "1"], ["HSET", f"{k}:snapshot", "pos", "0-0"],
                             ["SET", f"{k}:leader", "x"], ["XADD", f"{k}:decisions", "*", "d", "x"], *common],
    }


def fold_live(log: Any, lb_class: str | None = None) -> tuple[Any, Position | None]:
    """The state a replica would have now: the snapshot plus the tail (bad entries skipped, as replicas do)."""
    from events import log as logmod
    from events.position import ZERO
    from reconciler import fold, snapshot as snapmod, state as statemod

    state, pos = statemod.new(lb_class), ZERO
    snap = log.load_snapshot()
    if snap is not None and snap.version == snapmod.SNAPSHOT_VERSION:
        try:
            loaded = snapmod.load(snap.state)
            if loaded.lb_class == lb_class:
                state, pos = loaded, snap.position
        except snapmod.SnapshotError:
            state, pos = statemod.new(lb_class), ZERO
    applied = pos if pos != ZERO else None
    for rec in log.read(pos):
        try:
            fold.apply(state, logmod.decode_record(rec))
        except Exception:  # noqa: BLE001 - replicas dead-letter and skip the same entries
            pass
        applied = rec.position
    return state, applied


def _next_after(log: Any, pos: Position | None) -> Position | None:
    from events.position import ZERO

    page = log.read_page(pos or ZERO, 1)
    return page[0].position if page else None


def gather(log: Any, cluster: str, now: float, *, acl: bool = True, lb_class: str | None = None) -> Evidence:
    """Read everything the checks need from a live cluster (raises ``LogUnavailable`` when Redis is down)."""
    ev = Evidence(now=now)
    last = log.last_id()
    ev.head = last if last.ms or last.seq else None
    ev.first_event = _next_after(log, None)
    ev.heartbeats = set(log.alive_speakers())
    ev.statuses = log.speaker_statuses()
    ev.leader = log.leader()
    if ev.head is not None:
        ev.state, ev.applied_pos = fold_live(log, lb_class)
    snap = log.load_snapshot()
    if snap is not None:
        ev.snapshot_pos = snap.position
        ev.snapshot_next = _next_after(log, snap.position)
    dec = log.last_decisions()
    if dec is not None:
        raw = dec[1].get(b"pos") or dec[1].get("pos")
        try:
            ev.leader_pos = Position.parse(raw.decode() if isinstance(raw, bytes) else str(raw))
        except (ValueError, AttributeError):
            ev.leader_pos = None
    ev.leader_next = _next_after(log, ev.leader_pos) if ev.head is not None else None
    for node, st in ev.statuses.items():
        try:
            p = Position.parse(str(st.get("position")))
        except ValueError:
            continue
        ev.speaker_next[node] = _next_after(log, p)
    ev.deadletters = log.deadletter_count()
    if ev.deadletters:
        newest = log.newest_deadletter()
        ev.deadletter_newest = (str(newest[0]), newest[1]) if newest else None
    if acl:
        ev.acl, ev.acl_note = gather_acl(log, cluster)
    return ev


def gather_acl(log: Any, cluster: str) -> tuple[dict | None, str]:
    out: dict[str, list[tuple[str, bool | None, str]]] = {}
    missing = []
    for user, cmds in forbidden_commands(cluster).items():
        rows = []
        for cmd in cmds:
            allowed, detail = log.acl_dryrun(user, *cmd)
            if allowed is None:
                low = detail.lower()
                if "noperm" in low or "no permissions" in low or "unknown command" in low or "unknown subcommand" \
                        in low:
                    return None, f"cannot check: this connection may not run ACL DRYRUN ({detail})"
                missing.append(user)
                break
            rows.append((" ".join(cmd), allowed, detail))
        if rows:
            out[user] = rows
    if not out:
        return None, ("cannot check: the role users (" + ", ".join(missing) + ") do not exist; every component "
                      "probably shares one user with all rights (see deploy/redis/users.acl)")
    # with role users deployed, a password-less default user that can still write the log defeats them
    if log.acl_user_enabled("default"):
        cmd = ["XADD", f"streamlb:{{{cluster}}}:events", "*", "e", "x", "v", "1"]
        allowed, detail = log.acl_dryrun("default", *cmd)
        if allowed is not None:
            out["default"] = [(" ".join(cmd), allowed, detail)]
    note = f"users not defined: {', '.join(missing)}" if missing else ""
    return out, note
