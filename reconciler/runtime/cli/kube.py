"""Kubernetes commands: ``streamlb import metallb`` and ``streamlb watch``.

Thin: parsing, output and exit codes here; the work is in :mod:`reconciler.runtime.kube.migrate` and
:mod:`reconciler.runtime.kube.watch`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

err = Console(stderr=True, highlight=False, soft_wrap=True)

import_app = typer.Typer(
    help="Import configuration and state from another load balancer.", no_args_is_help=True,
    add_completion=False,
)

MetallbNs = Annotated[
    Optional[list[str]],
    typer.Option("--metallb-namespace", help="Namespace whose MetalLB objects count (repeatable).",
                 envvar="STREAMLB_METALLB_NAMESPACE"),
]
LbClass = Annotated[
    Optional[str],
    typer.Option("--lb-class", help="Handle only Services of this loadBalancerClass (default: no class).",
                 envvar="STREAMLB_LB_CLASS"),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"streamlb: error: {message}", markup=False)
    return typer.Exit(code)


def _write_events(path: Path, events: list) -> None:
    from events import codec, logfile

    if path.suffix in (".jsonl", ".json", ".ndjson"):
        blob = b"".join(codec.encode_json(e) + b"\n" for e in events)
    else:
        blob = logfile.encode_file(events)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)


@import_app.command("metallb")
def import_metallb(
    files: Annotated[list[str], typer.Argument(help="MetalLB dump(s): YAML or JSON as kubectl prints them; - for stdin.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Write the events here (.evlog, or .jsonl for "
                                                "native JSON lines). Without it: report only.")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="Report format: json or table.")] = "table",
    allow_changes: Annotated[bool, typer.Option("--allow-changes", help="Exit 0 even if some current "
                                                "assignment would not be kept.")] = False,
    metallb_namespace: MetallbNs = None,
    lb_class: LbClass = None,
) -> None:
    """Turn a MetalLB config dump plus Service statuses into an event log that keeps every current assignment.

    Exit 0 when every address MetalLB assigned is kept; 1 when some would change (the log is still written,
    use --allow-changes to accept); 2 for unreadable input.
    """
    from reconciler.runtime.kube import migrate

    if output not in ("json", "table"):
        raise _fail(f"--output must be json or table, not {output!r}")
    sources: list[tuple[str, str]] = []
    for f in files:
        try:
            if f == "-":
                sources.append(("<stdin>", sys.stdin.read()))
            else:
                sources.append((f, Path(f).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"{f}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        result = migrate.import_metallb(
            sources, metallb_namespaces=tuple(metallb_namespace or ("metallb-system",)), lb_class=lb_class
        )
    except migrate.ImportError_ as exc:
        raise _fail(str(exc)) from None
    if out is not None:
        try:
            _write_events(out, result.events)
        except OSError as exc:
            raise _fail(f"{out}: cannot write: {exc.strerror or exc}", 1) from None
    obj = result.to_json_obj()
    if output == "json":
        import msgspec

        sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(obj, order="sorted"), indent=2) + b"\n")
        sys.stdout.flush()
    else:
        con = Console(highlight=False, soft_wrap=True)
        con.print(f"events: {obj['events']}   Services with an address: {obj['services_with_ip']}   kept: "
                  f"{obj['assignments_kept']}   would change: {obj['assignments_changed']}", markup=False)
        if result.findings:
            t = Table(title="What streamlb does differently")
            for col in ("severity", "subject", "finding"):
                t.add_column(col, overflow="fold")
            for f in result.findings:
                t.add_row(f.severity, f.subject, f.message)
            con.print(t)
        if obj["ignored"]:
            con.print("ignored: " + ", ".join(f"{k} ×{n}" for k, n in obj["ignored"].items()), markup=False)
        for r in obj["rejected"]:
            con.print(f"rejected {r['where']}: {r['reason']}", markup=False)
        if out is not None:
            con.print(f"wrote {len(result.events)} events to {out}", markup=False)
    if result.assignments_changed and not allow_changes:
        err.print(f"streamlb: {result.assignments_changed} current assignment(s) would change "
                  "(see the errors above; --allow-changes to accept)", markup=False)
        raise typer.Exit(1)


def open_log(log_file: Optional[Path], redis_url: Optional[str], cluster: str):
    """The event log to append to: an evlog file, or the Redis stream when the Redis adapter is present."""
    if log_file is not None:
        from events import logfile

        return logfile.FileLog(log_file)
    if redis_url:
        try:
            from events import stream
        except ModuleNotFoundError:
            raise _fail("this build has no Redis stream adapter (events.stream); use --log FILE") from None
        try:
            return stream.StreamLog.from_url(redis_url, cluster)
        except ValueError as exc:
            raise _fail(str(exc)) from None
    raise _fail("no event log: give --log FILE or --redis-url URL (STREAMLB_REDIS_URL)")


def watch(
    kubeconfig: Annotated[Optional[str], typer.Option("--kubeconfig", envvar="KUBECONFIG",
                                                      help="Kubeconfig file (default: in-cluster, else ~/.kube/config).")] = None,
    context: Annotated[Optional[str], typer.Option("--context", help="Kubeconfig context.")] = None,
    log_file: Annotated[Optional[Path], typer.Option("--log", envvar="STREAMLB_LOG", help="Append to this evlog "
                                                     "file instead of Redis.")] = None,
    redis_url: Annotated[Optional[str], typer.Option("--redis-url", envvar="STREAMLB_REDIS_URL",
                                                     help="Redis URL of the event stream.")] = None,
    cluster: Annotated[str, typer.Option("--cluster", envvar="STREAMLB_CLUSTER", help="streamlb cluster name.")] = "default",
    state: Annotated[Optional[Path], typer.Option("--state", envvar="STREAMLB_WATCH_STATE",
                                                  help="Checkpoint file (resume without re-listing).")] = None,
    metallb_namespace: MetallbNs = None,
    lease_namespace: Annotated[Optional[str], typer.Option("--lease-namespace", envvar="STREAMLB_LEASE_NAMESPACE",
                                                           help="Elect one appending replica with a Lease in this "
                                                                "namespace (default: no election).")] = None,
    lease_name: Annotated[str, typer.Option("--lease-name", envvar="STREAMLB_LEASE_NAME")] = "streamlb-watcher",
    identity: Annotated[Optional[str], typer.Option("--identity", envvar="STREAMLB_IDENTITY",
                                                    help="This replica's name in the Lease (default: host-pid).")] = None,
    lease_seconds: Annotated[int, typer.Option("--lease-seconds", min=2)] = 15,
    watch_timeout: Annotated[int, typer.Option("--watch-timeout", min=1, help="Seconds per watch request.")] = 300,
    duration: Annotated[Optional[float], typer.Option("--duration", help="Stop after this many seconds.")] = None,
    metrics_port: Annotated[Optional[int], typer.Option("--metrics-port", envvar="STREAMLB_METRICS_PORT",
                                                        help="Serve Prometheus metrics on this port.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """List and watch the cluster and append k8s.upsert/k8s.delete events to the log (the Kubernetes producer).

    Services, Nodes, Namespaces, EndpointSlices and the MetalLB CRDs; never Secrets. Resumes from --state without
    re-listing when nothing was appended since; otherwise re-lists and appends only differences.
    """
    import logging
    import os
    import signal
    import socket
    import threading

    from reconciler.runtime.kube import api as kube_api
    from reconciler.runtime.kube import lease as kube_lease
    from reconciler.runtime.kube import watch as kube_watch

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log = open_log(log_file, redis_url, cluster)
    try:
        api = kube_api.make_client(kubeconfig, context)
    except Exception as exc:  # kubernetes.config raises several types for a bad or missing kubeconfig
        raise _fail(f"cannot configure the Kubernetes client: {exc}") from None
    elector = None
    if lease_namespace:
        elector = kube_lease.LeaseElector(api, lease_namespace, lease_name,
                                          identity or f"{socket.gethostname()}-{os.getpid()}", lease_seconds)
    w = kube_watch.Watcher(api, log, tuple(metallb_namespace or ("metallb-system",)), state_path=state,
                           elector=elector, watch_timeout=watch_timeout)
    if metrics_port is not None:
        try:
            kube_watch.serve_metrics(w, metrics_port)
        except OSError as exc:
            raise _fail(f"--metrics-port {metrics_port}: {exc.strerror or exc}", 1) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    from events.log import LogForbidden

    try:
        stats = w.run(stop, duration)
    except LogForbidden as exc:  # the wrong Redis user for the producer: waiting will not help
        raise _fail(str(exc), 1) from None
    err.print(f"streamlb watch: appended {stats.appended}, unchanged {stats.skipped_unchanged}, rejected "
              f"{stats.rejected}, relists {stats.relists}, 410 Gone {stats.gone}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
    app.command("watch")(watch)
    import importlib

    try:  # `streamlb run --write-status` calls the Kubernetes status writer when both are built in
        cli_run = importlib.import_module("reconciler.runtime.cli.run")
    except ModuleNotFoundError as exc:
        if exc.name != "reconciler.runtime.cli.run":
            raise
    else:
        cli_run.set_status_writer_factory(_status_writer_factory)


def _status_writer_factory(options: dict):
    # imported on use: the kubernetes client is slow to import and most commands never need it
    from reconciler.runtime.kube import status as kube_status

    return kube_status.daemon_writer_factory(options)
