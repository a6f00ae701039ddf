"""``streamlb speak --node NAME`` (the per-node speaker) and ``streamlb status`` (what a speaker is doing)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Annotated, Optional

import typer

from reconciler.runtime.cli.events import DEFAULT_URL, ClusterName, RedisUrl, _fail
from reconciler.runtime.daemons import liveness

DEFAULT_STATUS_DIR = "/run/streamlb"


def _status_path(node: str | None, status_file: str | None) -> str:
    if status_file:
        return status_file
    return f"{DEFAULT_STATUS_DIR}/speaker-{node}.json"


def liveness_log(url: str, cluster: str, timeout: float):
    """A StreamLog on a connection of its own with a short timeout, for heartbeats and the liveness monitor: a
    refresh stuck behind a slow read, or waiting 30 s on a dead server, would defeat a sub-second TTL."""
    from events import stream

    client = stream.connect(url, socket_timeout=timeout)
    pool = getattr(client, "connection_pool", None)
    if pool is not None and hasattr(pool, "connection_kwargs"):
        pool.connection_kwargs["socket_connect_timeout"] = timeout
    return stream.StreamLog(client, cluster)


def register(app: typer.Typer) -> None:
    @app.command()
    def speak(
        node: Annotated[str, typer.Option("--node", envvar="STREAMLB_NODE", help="This node's name.")],
        redis_url: RedisUrl = DEFAULT_URL,
        cluster: ClusterName = "default",
        log_file: Annotated[Optional[str], typer.Option("--log", help="Follow this event log file (.evlog) "
                                                        "instead of Redis (tests, offline).")] = None,
        l2: Annotated[bool, typer.Option("--l2/--no-l2", help="Answer ARP/NDP and send gratuitous bursts.")] = True,
        bgp: Annotated[bool, typer.Option("--bgp/--no-bgp", help="Run BGP sessions.")] = True,
        bgp_backoff_max: Annotated[float, typer.Option(
            "--bgp-backoff-max", min=0.1,
            help="Longest wait between connection attempts to a BGP peer, seconds (MetalLB: 120).")] = 120.0,
        bgp_listen_port: Annotated[int, typer.Option(
            "--bgp-listen-port", min=0, max=65535,
            help="Also accept BGP connections from configured peers on this port (routers that connect out; "
                 "collisions resolved per RFC 4271 §6.8). 0: connect out only, as MetalLB's native mode.")] = 179,
        arp_rate_limit: Annotated[Optional[float], typer.Option(
            "--arp-rate-limit", min=0.1,
            help="Cap ARP/NDP frames per second per interface (off by default). For switches with dynamic ARP "
                 "inspection, which police ARP (often 15 pps per port); every IP of a burst is served fairly.",
        )] = None,
        exclude_interfaces: Annotated[list[str], typer.Option(
            "--exclude-interface", help="Regex of interface names never used for L2 (repeatable).")] = [],
        keep_on_exit: Annotated[bool, typer.Option(
            "--keep-on-exit", help="On SIGTERM keep routes at BGP peers (graceful restart) and do not announce "
                                   "speaker.down.")] = False,
        secrets_dir: Annotated[Optional[str], typer.Option(
            "--secrets-dir", help="BGP passwords: DIR/<secret name>/password or DIR/<peer name>.")] = None,
        status_file: Annotated[Optional[str], typer.Option("--status-file", help="Where to write the status JSON "
                                                           f"(default {DEFAULT_STATUS_DIR}/speaker-NODE.json).")] = None,
        heartbeat_interval_ms: Annotated[int, typer.Option(
            "--heartbeat-interval-ms", min=10, help="Refresh the heartbeat key this often (README \"Failure "
                                                    "detection\").")] = liveness.HEARTBEAT_INTERVAL_MS,
        heartbeat_ttl_ms: Annotated[int, typer.Option(
            "--heartbeat-ttl-ms", min=50, help="TTL of the heartbeat key: this node is declared down when no "
                                               "refresh arrived for this long.")] = liveness.HEARTBEAT_TTL_MS,
        restart_grace_ms: Annotated[int, typer.Option(
            "--restart-grace-ms", min=0, help="With --keep-on-exit: the heartbeat key outlives the process this "
                                              "long, so a quick restart is not a node death.")
        ] = liveness.RESTART_GRACE_MS,
        conflict_probe: Annotated[bool, typer.Option(
            "--conflict-probe/--no-conflict-probe",
            help="Now and then ARP-probe (RFC 5227) / DAD-probe (RFC 4862) the IPs this node announces and report "
                 "any other host that answers (status `conflicts`, `streamlb doctor`).")] = True,
        conflict_probe_interval: Annotated[float, typer.Option(
            "--conflict-probe-interval", min=0.1, help="Seconds between probes of one IP.")] = 60.0,
        conflict_probe_rate: Annotated[float, typer.Option(
            "--conflict-probe-rate", min=0.1, help="At most this many probe frames per second in all.")] = 20.0,
        status_ttl_ms: Annotated[int, typer.Option(
            "--status-ttl-ms", min=1000, help="Lifetime of the status key in Redis (streamlb:{c}:status:NODE); "
                                             "longer than the heartbeat so doctor sees what a dead speaker last "
                                             "said.")] = 60_000,
        metrics_port: Annotated[Optional[int], typer.Option("--metrics-port", envvar="STREAMLB_METRICS_PORT")] = None,
        metrics_addr: Annotated[str, typer.Option("--metrics-addr")] = "0.0.0.0",
        lb_class: Annotated[Optional[str], typer.Option("--lb-class", envvar="STREAMLB_LB_CLASS")] = None,
        metallb_namespace: Annotated[Optional[list[str]], typer.Option(
            "--metallb-namespace", envvar="STREAMLB_METALLB_NAMESPACE",
            help="Namespace whose MetalLB objects count (repeatable); others are ignored and counted.")] = None,
        log_format: Annotated[str, typer.Option("--log-format", envvar="STREAMLB_LOG_FORMAT")] = "text",
        log_level: Annotated[str, typer.Option("--log-level")] = "info",
    ) -> None:
        """Run the speaker for one node: fold the stream, plan this node, keep ARP/NDP and BGP in sync."""
        from reconciler.runtime.cli.run import setup_logging
        from reconciler.runtime.daemons.speaker import Speaker, SpeakerMetrics, SpeakerSettings

        if log_format not in ("text", "json"):
            raise _fail(f"--log-format must be text or json, not {log_format!r}")
        setup_logging(log_format, log_level)
        if log_file is not None:
            from events.logfile import FileLog

            if not Path(log_file).is_file():
                raise _fail(f"{log_file}: no such file")
            lg = FileLog(log_file)
            hb_log = None
        else:
            from events import stream

            try:
                lg = stream.StreamLog.from_url(redis_url, cluster)
                hb_log = liveness_log(redis_url, cluster, heartbeat_ttl_ms / 2000)
            except ValueError as exc:
                raise _fail(str(exc)) from None
        if heartbeat_interval_ms >= heartbeat_ttl_ms:
            raise _fail(f"--heartbeat-interval-ms ({heartbeat_interval_ms}) must be below --heartbeat-ttl-ms "
                        f"({heartbeat_ttl_ms})")
        status_path = _status_path(node, status_file)
        try:
            Path(status_path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _fail(f"--status-file {status_path}: {exc.strerror}", code=1) from None
        settings = SpeakerSettings(
            node=node, keep_on_exit=keep_on_exit, secrets_dir=secrets_dir, status_file=status_path,
            heartbeat_ttl_ms=heartbeat_ttl_ms, heartbeat_interval_ms=heartbeat_interval_ms,
            restart_grace_ms=restart_grace_ms, lb_class=lb_class, l2=l2, bgp=bgp, status_ttl_ms=status_ttl_ms,
            bgp_listen_port=bgp_listen_port or None, bgp_backoff_max=bgp_backoff_max,
            metallb_namespaces=tuple(metallb_namespace or ("metallb-system",)),
        )
        metrics = SpeakerMetrics()
        if metrics_port is not None:
            try:
                metrics.serve(metrics_port, metrics_addr)
            except OSError as exc:
                raise _fail(f"--metrics-port {metrics_port}: {exc.strerror or exc}", code=1) from None
        l2sp = None
        if l2:
            from fastpath.emit import rawsock
            from fastpath.emit.l2 import L2Speaker, discover_interfaces

            excl = ["lo", *exclude_interfaces]
            l2sp = L2Speaker(rate_limit=arp_rate_limit, discover=lambda: discover_interfaces(excl))
            try:
                l2sp.open()
            except rawsock.NeedsCapability as exc:
                raise _fail(str(exc), code=1) from None
        prober = addresses = None
        if l2sp is not None:
            from fastpath.emit import probe

            addresses = probe.interface_addresses
            if conflict_probe:
                prober = probe.ConflictProber(l2sp.responder, interval=conflict_probe_interval,
                                              rate=conflict_probe_rate)
        sp = Speaker(lg, settings, l2=l2sp, metrics=metrics, prober=prober, addresses=addresses,
                     heartbeat_log=hb_log)

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            logging.getLogger("streamlb.speak").info("starting", extra={"node": node, "cluster": cluster})
            await sp.run(stop)

        from events.log import LogForbidden

        try:
            asyncio.run(main())
        except LogForbidden as exc:  # the wrong Redis user for this component: waiting will not help
            logging.getLogger("streamlb.speak").error("stopped: %s", exc, extra={"node": node, "pos": str(sp.pos)})
            raise typer.Exit(1) from None

    @app.command()
    def status(
        node: Annotated[Optional[str], typer.Option("--node", envvar="STREAMLB_NODE")] = None,
        status_file: Annotated[Optional[str], typer.Option("--status-file")] = None,
        output: Annotated[str, typer.Option("--output", "-o", help="json or table.")] = "table",
    ) -> None:
        """Show what a speaker is doing: log position, announced IPs, per-peer session state, errors, counters."""
        if output not in ("json", "table"):
            raise _fail(f"--output must be json or table, not {output!r}")
        if not node and not status_file:
            raise _fail("give --node or --status-file")
        path = _status_path(node, status_file)
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise _fail(f"{path}: no status file (is `streamlb speak --node {node or '...'}` running?)", code=1) \
                from None
        except (OSError, json.JSONDecodeError) as exc:
            raise _fail(f"{path}: unreadable status: {exc}", code=1) from None
        if output == "json":
            typer.echo(json.dumps(data, indent=2, sort_keys=True))
            return
        from rich.console import Console
        from rich.table import Table

        con = Console(highlight=False)
        con.print(f"node {data['node']}  position {data['position']}  applied {data['applied']}  "
                  f"log {'up' if data['log_up'] else 'DOWN'}", markup=False)
        hb = data.get("heartbeat") or {}
        if hb:
            age = hb.get("last_ok_age_s")
            con.print(f"heartbeat: every {hb['interval_ms']} ms, TTL {hb['ttl_ms']} ms; last refresh "
                      f"{'never' if age is None else f'{age:.1f} s ago'}, largest gap {hb['max_gap_s']:.3f} s, "
                      f"failures {hb['failures']}" + ("; LINKS DOWN (heartbeat withdrawn)" if hb.get("link_down")
                                                      else ""), markup=False)
        l2 = data.get("l2") or {}
        if l2:
            con.print(f"L2: {len(l2['announced'])} IPs on {', '.join(l2['interfaces']) or '-'}; "
                      f"gratuitous {l2['gratuitous_sent']}, requests {l2['requests_received']}, "
                      f"responses {l2['responses_sent']}", markup=False)
        for i in data.get("interfaces") or ():
            con.print(f"interface {i['name']} {i['mac']}: {', '.join(i['addresses']) or '-'}", markup=False)
        for c in data.get("conflicts") or ():
            con.print(f"CONFLICT {c['ip']}: also answered by {c['mac']} on {c['interface']} "
                      f"(since {c['first_seen']}, last {c['last_seen']})", markup=False)
        t = Table("peer", "address", "state", "advertised", "updates", "notifications out/in", "last error")
        for name, p in data.get("peers", {}).items():
            c = p["counters"]
            t.add_row(name, p["address"], p["state"], f"{p['advertised']}/{p['desired']}", str(c["updates_out"]),
                      f"{c['notifications_out']}/{c['notifications_in']}", p["last_error"] or "-")
        con.print(t)
        bfd = data.get("bfd") or {}
        if bfd:
            t = Table("BFD peer", "address", "state", "remote disc", "tx/rx ms", "detect", "flaps", "in/out",
                      "dropped (TTL)", "echo")
            for name, b in bfd.items():
                t.add_row(name, f"{b['peer']}{' (multihop)' if b['multihop'] else ''}", b["state"],
                          str(b["remote_discriminator"]), f"{b['transmit_interval_ms']:g}/{b['receive_interval_ms']:g}",
                          f"{b['detection_time_ms']:g} ms", str(b["flaps"]), f"{b['packets_in']}/{b['packets_out']}",
                          str(b["ttl_dropped"]), b["echo"])
            con.print(t)
