"""``streamlb plan`` (what one node would do now) and ``streamlb simulate`` (what if nodes fail or pools drain).

Both fold the logs offline, like ``replay``, and are strict about their input: a record that ``replay`` would list
under ``rejected`` is an error here (one line naming the file and the record, exit 2), because a dry run or a
what-if answer computed from a partly read log would mislead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from events import inputs, schema
from reconciler import effects, fold, planning
from reconciler.state import State

Logs = Annotated[list[Path], typer.Option("--log", help="Input file (repeatable): .evlog, JSON lines or YAML.")]
Output = Annotated[str, typer.Option("--output", "-o", help="json or table.")]
MetallbNs = Annotated[
    Optional[list[str]],
    typer.Option("--metallb-namespace", help="Namespace whose MetalLB objects count (repeatable).",
                 envvar="STREAMLB_METALLB_NAMESPACE"),
]
LbClass = Annotated[
    Optional[str],
    typer.Option("--lb-class", help="Handle only Services of this loadBalancerClass.", envvar="STREAMLB_LB_CLASS"),
]


class BadInput(Exception):
    pass


def _fail(message: str) -> typer.Exit:
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"streamlb: error: {message}", markup=False)
    return typer.Exit(2)


def _fold(logs: list[Path], at: int | None, metallb_namespace: list[str] | None, lb_class: str | None) -> State:
    from reconciler.runtime import replay as replaymod

    try:
        result = replaymod.replay(
            [str(f) for f in logs], at=at, metallb_namespaces=tuple(metallb_namespace or ("metallb-system",)),
            lb_class=lb_class,
        )
    except inputs.InputError as exc:
        raise BadInput(str(exc)) from None
    if result.rejected:
        r = result.rejected[0]
        more = f" (and {len(result.rejected) - 1} more bad records)" if len(result.rejected) > 1 else ""
        raise BadInput(f"{r['file']}:{r['record']}: {r['reason']}{more}")
    return result.state


def _node_names(state: State) -> list[str]:
    return sorted(name for (_, name) in state.objects["Node"])


def _check_output(output: str) -> None:
    if output not in ("json", "table"):
        raise BadInput(f"--output must be json or table, not {output!r}")


def _print_json(obj: Any) -> None:
    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(obj, order="sorted"), indent=2) + b"\n")
    sys.stdout.flush()


# ------------------------------------------------------------------------------------------------------------------
# plan


def plan_result(state: State, node: str, since: State | None) -> dict:
    new = planning.node_plan(state, node)
    old = planning.node_plan(since, node) if since is not None else effects.NodePlan()
    return {"node": node, "effects": effects.to_json(effects.diff(old, new)), "plan": new.to_json()}


def plan_cmd(
    node: Annotated[str, typer.Option("--node", help="The node to plan for.", envvar="STREAMLB_NODE")],
    log: Logs,
    since: Annotated[
        Optional[int],
        typer.Option("--since", min=0, help="Diff against the state after the first N records (default: nothing "
                                            "announced yet)."),
    ] = None,
    output: Output = "table",
    metallb_namespace: MetallbNs = None,
    lb_class: LbClass = None,
) -> None:
    """Dry run: the ordered effects NODE would execute now (withdrawals first, gratuitous ARP schedule included)."""
    try:
        _check_output(output)
        state = _fold(log, None, metallb_namespace, lb_class)
        if ("", node) not in state.objects["Node"]:
            known = ", ".join(_node_names(state)) or "none"
            raise BadInput(f"unknown node {node!r} (nodes in the log: {known})")
        before = _fold(log, since, metallb_namespace, lb_class) if since is not None else None
    except BadInput as exc:
        raise _fail(str(exc)) from None
    result = plan_result(state, node, before)
    if output == "json":
        _print_json(result)
        return
    console = Console(highlight=False)
    console.print(f"node {node}: {len(result['effects'])} effects")
    table = Table()
    for col in ("#", "effect", "target", "details"):
        table.add_column(col)
    for i, e in enumerate(result["effects"], 1):
        kind = e["kind"]
        if kind.startswith("l2."):
            target = e["ip"]
            details = ""
            if kind == "l2.announce":
                ifs = ",".join(e["interfaces"]) or "all interfaces"
                garp = e["garp"]
                details = f"{ifs}; bursts at {garp['offsets_ms']} ms of {'+'.join(garp['frames'])}"
        else:
            target = f"{e['peer']} {e['prefix']}"
            details = ""
            if kind == "bgp.advertise":
                details = f"local_pref={e['local_pref']} communities={' '.join(e['communities']) or '-'}"
        table.add_row(str(i), kind, target, details)
    console.print(table)


# ------------------------------------------------------------------------------------------------------------------
# simulate


def _announced(state: State, key: str) -> tuple[bool, str | None]:
    """(is the Service reachable from outside, why not)."""
    dec = state.services.get(key)
    if dec is None:
        return False, "serviceDeleted"
    if not dec.ingress:
        return False, dec.reason or "noIPAllocated"
    l2 = planning.l2_map(state, key)
    if any(v["node"] is not None for v in l2.values()):
        return True, None
    reasons = []
    for node in _node_names(state):
        reason, _ = planning.bgp_reason(state, key, node)
        if reason is None:
            return True, None
        reasons.append(reason)
    l2_reason = next((v["reason"] for v in l2.values()), None)
    return False, l2_reason or (sorted(set(reasons))[0] if reasons else "noAnnouncingNode")


def simulate_result(before: State, after: State) -> dict:
    keys = sorted(set(before.services) | set(after.services))
    moves = []
    ip_changes = []
    losing = []
    for key in keys:
        b = planning.l2_map(before, key) if key in before.services else {}
        a = planning.l2_map(after, key) if key in after.services else {}
        for ip in sorted(set(b) | set(a), key=effects.ip_key):
            fb = b.get(ip, {}).get("node")
            ta = a.get(ip, {}).get("node")
            if fb != ta:
                why = None
                if ta is None:
                    why = a.get(ip, {}).get("reason")
                    if why is None:  # the address itself is gone
                        why = (after.services[key].reason or "ipChanged") if key in after.services else "serviceDeleted"
                moves.append({"service": key, "ip": ip, "from": fb, "to": ta, "reason": why})
        ib = list(before.services[key].ingress) if key in before.services else []
        ia = list(after.services[key].ingress) if key in after.services else []
        if ib != ia:
            ip_changes.append({"service": key, "before": ib, "after": ia})
        was, _ = _announced(before, key)
        now, why = _announced(after, key)
        if was and not now:
            losing.append({"service": key, "reason": why})
    withdrawn, advertised = [], []
    for node in sorted(set(_node_names(before)) | set(_node_names(after))):
        old = planning.node_plan(before, node).bgp
        new = planning.node_plan(after, node).bgp
        for peer, pfx in sorted(set(old) - set(new), key=lambda k: (k[0], effects.prefix_key(k[1]))):
            withdrawn.append({"node": node, "peer": peer, "prefix": pfx})
        for peer, pfx in sorted(set(new) - set(old), key=lambda k: (k[0], effects.prefix_key(k[1]))):
            advertised.append({"node": node, "peer": peer, "prefix": pfx})
    return {
        "l2_moves": moves,
        "ip_changes": ip_changes,
        "bgp_withdrawn": withdrawn,
        "bgp_advertised": advertised,
        "services_losing_service": losing,
    }


def simulate_cmd(
    log: Logs,
    fail_node: Annotated[
        Optional[list[str]], typer.Option("--fail-node", help="A node whose speaker fails (repeatable).")
    ] = None,
    drain_pool: Annotated[
        Optional[list[str]], typer.Option("--drain-pool", help="An IPAddressPool to remove (repeatable).")
    ] = None,
    output: Output = "table",
    metallb_namespace: MetallbNs = None,
    lb_class: LbClass = None,
) -> None:
    """What if: replay, fail nodes and/or drain pools, and show which IPs move where, which BGP prefixes are
    withdrawn from which peers, and which Services lose service."""
    try:
        _check_output(output)
        if not fail_node and not drain_pool:
            raise BadInput("nothing to simulate: give --fail-node and/or --drain-pool")
        before = _fold(log, None, metallb_namespace, lb_class)
        after = _fold(log, None, metallb_namespace, lb_class)
        hypothetical: list[schema.Event] = []
        for node in fail_node or []:
            if ("", node) not in after.objects["Node"]:
                raise BadInput(f"unknown node {node!r} (nodes in the log: {', '.join(_node_names(after)) or 'none'})")
            hypothetical.append(schema.SpeakerDown(node=node))
        for pool in drain_pool or []:
            found = sorted(k for k in after.objects["IPAddressPool"] if k[1] == pool)
            if not found:
                known = ", ".join(sorted({n for _, n in after.objects["IPAddressPool"]})) or "none"
                raise BadInput(f"unknown pool {pool!r} (pools in the log: {known})")
            for ns, name in found:
                hypothetical.append(schema.K8sDelete(ref=schema.ObjectRef(kind="IPAddressPool", namespace=ns,
                                                                           name=name)))
    except BadInput as exc:
        raise _fail(str(exc)) from None
    planning.ensure(after)  # the hypothetical events are then planned incrementally, as a speaker would
    for e in hypothetical:
        fold.apply(after, e)
    result = simulate_result(before, after)
    result["scenario"] = {"fail_nodes": sorted(fail_node or []), "drain_pools": sorted(drain_pool or [])}
    if output == "json":
        _print_json(result)
        return
    console = Console(highlight=False)
    sc = result["scenario"]
    console.print(f"scenario: fail nodes {sc['fail_nodes'] or '-'}, drain pools {sc['drain_pools'] or '-'}")
    t = Table(title=f"L2 moves ({len(result['l2_moves'])})")
    for col in ("service", "ip", "from", "to", "reason"):
        t.add_column(col)
    for m in result["l2_moves"]:
        t.add_row(m["service"], m["ip"], m["from"] or "-", m["to"] or "-", m["reason"] or "")
    console.print(t)
    if result["ip_changes"]:
        t = Table(title=f"IP changes ({len(result['ip_changes'])})")
        for col in ("service", "before", "after"):
            t.add_column(col)
        for c in result["ip_changes"]:
            t.add_row(c["service"], ", ".join(c["before"]) or "-", ", ".join(c["after"]) or "-")
        console.print(t)
    t = Table(title=f"BGP withdrawn ({len(result['bgp_withdrawn'])})")
    for col in ("node", "peer", "prefix"):
        t.add_column(col)
    for w in result["bgp_withdrawn"]:
        t.add_row(w["node"], w["peer"], w["prefix"])
    console.print(t)
    losing = result["services_losing_service"]
    console.print(f"services losing service: {len(losing)}")
    for s in losing:
        console.print(f"  {s['service']}: {s['reason']}")


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_cmd)
    app.command("simulate")(simulate_cmd)
