"""``streamlb router-config``: the configuration of the router the nodes peer with (design.md §10).

Folds the logs offline (like ``replay``) or the live stream of a cluster (``--redis-url``: its snapshot, then every
entry after it) and renders :func:`reconciler.routercfg.derive` for one vendor. Bad input — an unreadable log, a
record that does not fold, no BGPPeer at that address, a node without an address — is one line and exit 2; an
unreachable Redis is exit 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from reconciler import routercfg

VENDORS = {
    "frr": routercfg.render_frr,
    "bird": routercfg.render_bird,
    "cisco-nxos": routercfg.render_nxos,
    "arista-eos": routercfg.render_eos,
    "junos": routercfg.render_junos,
}


class BadInput(Exception):
    pass


def _fail(message: str, code: int = 2) -> typer.Exit:
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"streamlb: error: {message}", markup=False)
    return typer.Exit(code)


def _fold_files(logs: list[Path], metallb_namespace: list[str] | None, lb_class: str | None):
    from events import inputs
    from reconciler.runtime import replay as replaymod

    try:
        result = replaymod.replay([str(f) for f in logs], metallb_namespaces=tuple(metallb_namespace or
                                                                                    ("metallb-system",)),
                                  lb_class=lb_class)
    except inputs.InputError as exc:
        raise BadInput(str(exc)) from None
    if result.rejected:
        r = result.rejected[0]
        more = f" (and {len(result.rejected) - 1} more bad records)" if len(result.rejected) > 1 else ""
        raise BadInput(f"{r['file']}:{r['record']}: {r['reason']}{more}")
    return result.state


class Unreachable(Exception):
    pass


def fold_stream(url: str, cluster: str, lb_class: str | None):
    """The state of a live cluster: its snapshot (if usable) plus every entry after it. Entries that do not
    decode or fold are skipped, as every replica skips them (they are in the dead-letter stream)."""
    from events import stream
    from events import log as logmod
    from events.position import ZERO
    from reconciler import fold, snapshot as snapmod, state as statemod

    try:
        lg = stream.StreamLog.from_url(url, cluster)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    try:
        st, pos = statemod.new(lb_class), ZERO
        snap = lg.load_snapshot()
        if snap is not None and snap.version == snapmod.SNAPSHOT_VERSION:
            try:
                loaded = snapmod.load(snap.state)
                if loaded.lb_class == lb_class:
                    st, pos = loaded, snap.position
            except snapmod.SnapshotError:
                pass
        while True:
            page = lg.read_page(pos, 10_000)
            for rec in page:
                if rec.position <= pos:
                    continue
                pos = rec.position
                try:
                    fold.apply(st, logmod.decode_record(rec))
                except Exception:  # noqa: BLE001 - dead-lettered by every replica; skipped here alike
                    continue
            if len(page) < 10_000:
                break
    except logmod.LogUnavailable as exc:
        raise Unreachable(f"{exc} (is Redis running? set --redis-url / STREAMLB_REDIS_URL)") from None
    finally:
        lg.close()
    return st


def router_config_cmd(
    router: Annotated[str, typer.Option("--router", help="The router's address (a BGPPeer's peerAddress).")],
    vendor: Annotated[str, typer.Option("--vendor", help="frr, bird, cisco-nxos, arista-eos or junos.")],
    log: Annotated[Optional[list[Path]], typer.Option(
        "--log", help="Input file (repeatable): .evlog, JSON lines or YAML. Without it: the live stream.")] = None,
    redis_url: Annotated[Optional[str], typer.Option(
        "--redis-url", envvar="STREAMLB_REDIS_URL",
        help="Read a live cluster's stream (when no --log is given).")] = None,
    cluster: Annotated[str, typer.Option("--cluster", envvar="STREAMLB_CLUSTER",
                                         help="streamlb cluster name (keys streamlb:{NAME}:...).")] = "default",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    router_asn: Annotated[Optional[int], typer.Option(
        "--router-asn", min=1, max=0xFFFFFFFF,
        help="The router's AS, for BGPPeers with dynamicASN: external (the log does not say it).")] = None,
    router_id: Annotated[Optional[str], typer.Option(
        "--router-id", help="The router's BGP identifier (default: its address when IPv4).")] = None,
    metallb_namespace: Annotated[Optional[list[str]], typer.Option(
        "--metallb-namespace", envvar="STREAMLB_METALLB_NAMESPACE",
        help="Namespace whose MetalLB objects count (repeatable).")] = None,
    lb_class: Annotated[Optional[str], typer.Option("--lb-class", envvar="STREAMLB_LB_CLASS",
                                                    help="Handle only Services of this loadBalancerClass.")] = None,
) -> None:
    """The configuration of the router at --router: one neighbor per node, ECMP, import filters of exactly the
    pools' prefixes, BFD, timers, a maximum-prefix guard and a password placeholder (secrets never leave the
    cluster)."""
    try:
        render = VENDORS.get(vendor)
        if render is None:
            raise BadInput(f"--vendor must be one of {', '.join(VENDORS)}, not {vendor!r}")
        if log:  # --log wins over a Redis URL (which may come from STREAMLB_REDIS_URL in the environment)
            state = _fold_files(log, metallb_namespace, lb_class)
        elif redis_url:
            state = fold_stream(redis_url, cluster, lb_class)
        else:
            raise BadInput("no event log: give --log FILE or --redis-url URL (STREAMLB_REDIS_URL)")
        rc = routercfg.derive(state, router, router_asn=router_asn, router_id=router_id)
    except (BadInput, routercfg.RouterConfigError) as exc:
        raise _fail(str(exc)) from None
    except Unreachable as exc:
        raise _fail(str(exc), code=1) from None
    text = render(rc)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        output.write_text(text)
    except OSError as exc:
        raise _fail(f"{output}: {exc.strerror or exc}") from None


def register(app: typer.Typer) -> None:
    app.command("router-config")(router_config_cmd)
