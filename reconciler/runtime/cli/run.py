"""``streamlb run``: the reconciler daemon (see :mod:`reconciler.runtime.daemons.replica`).

Status write-back (``--write-status``) is provided by another module: it calls :func:`set_status_writer_factory`
with a function ``factory(options: dict) -> StatusWriter`` (a callable taking a
:class:`reconciler.runtime.daemons.replica.DecisionBatch`); only the leader calls the writer, after each published batch.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from reconciler.runtime.cli.events import DEFAULT_URL, ClusterName, RedisUrl, _fail
from reconciler.runtime.daemons import liveness

_status_writer_factory: Callable[[dict[str, Any]], Any] | None = None


def set_status_writer_factory(factory: Callable[[dict[str, Any]], Any] | None) -> None:
    global _status_writer_factory
    _status_writer_factory = factory


class JsonFormatter(logging.Formatter):
    _std = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage()}
        for k, v in vars(record).items():
            if k not in self._std and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    _std = JsonFormatter._std

    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in self._std and not k.startswith("_"))
        base = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname.lower():7} {record.getMessage()}"
        text = f"{base} {extra}" if extra else base
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(fmt: str, level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("streamlb")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        redis_url: RedisUrl = DEFAULT_URL,
        cluster: ClusterName = "default",
        snapshot_every: Annotated[int, typer.Option("--snapshot-every", min=1, envvar="STREAMLB_SNAPSHOT_EVERY",
                                                    help="Snapshot after this many entries (leader).")] = 10_000,
        snapshot_interval: Annotated[float, typer.Option("--snapshot-interval", min=0.01,
                                                         envvar="STREAMLB_SNAPSHOT_INTERVAL",
                                                         help="...or after this many seconds.")] = 60.0,
        retention: Annotated[bool, typer.Option("--trim/--no-trim", envvar="STREAMLB_TRIM",
                                                help="Trim the stream below the newest snapshot.")] = False,
        leader_ttl: Annotated[int, typer.Option("--leader-ttl-ms", min=100, help="Leader lock TTL.")
                              ] = liveness.LEADER_TTL_MS,
        monitor_interval: Annotated[float, typer.Option(
            "--monitor-interval", min=0.01, help="Seconds between two looks at the speakers' heartbeat keys (every "
                                                 "replica).")] = liveness.MONITOR_INTERVAL,
        speaker_ttl: Annotated[float, typer.Option(
            "--speaker-ttl", min=0.0, help="Seconds after its first look before this replica judges nodes it never "
                                           "saw beating (a speaker still starting).")] = liveness.UNSEEN_GRACE,
        hash_interval: Annotated[float, typer.Option("--hash-interval", min=0.0,
                                                     help="Seconds between state hashes in decisions entries "
                                                          "(0: every entry).")] = 5.0,
        page: Annotated[int, typer.Option("--page", min=1, help="Entries per read.")] = 1000,
        metrics_port: Annotated[Optional[int], typer.Option("--metrics-port", envvar="STREAMLB_METRICS_PORT",
                                                            help="Serve Prometheus metrics on this port.")] = None,
        metrics_addr: Annotated[str, typer.Option("--metrics-addr", help="Address for the metrics port.")] = "0.0.0.0",
        log_format: Annotated[str, typer.Option("--log-format", envvar="STREAMLB_LOG_FORMAT",
                                                help="text or json.")] = "text",
        log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning, error.")] = "info",
        lb_class: Annotated[Optional[str], typer.Option("--lb-class", envvar="STREAMLB_LB_CLASS")] = None,
        metallb_namespace: Annotated[Optional[list[str]], typer.Option(
            "--metallb-namespace", envvar="STREAMLB_METALLB_NAMESPACE",
            help="Namespace whose MetalLB objects count (repeatable); others are ignored and counted.")] = None,
        replica: Annotated[Optional[str], typer.Option("--replica", help="Replica name (default host-pid).")] = None,
        checkpoint_ms: Annotated[int, typer.Option("--checkpoint-ms", min=0,
                                                   help="Record the state hash at each change of stream-ID "
                                                        "millisecond bucket of this size (0: off).")] = 0,
        checkpoint_file: Annotated[Optional[str], typer.Option("--checkpoint-file",
                                                               help="Append checkpoints here (JSON lines).")] = None,
        write_status: Annotated[bool, typer.Option("--write-status/--no-write-status",
                                                   help="Leader writes Service status back to Kubernetes.")] = False,
        kubeconfig: Annotated[Optional[str], typer.Option("--kubeconfig", envvar="KUBECONFIG")] = None,
    ) -> None:
        """Run the reconciler daemon: snapshot -> catch up -> follow the stream, fold, publish decisions."""
        from reconciler.runtime.daemons import replica as daemonmod
        from reconciler.runtime.metrics import Metrics

        if log_format not in ("text", "json"):
            raise _fail(f"--log-format must be text or json, not {log_format!r}")
        setup_logging(log_format, log_level)
        writer = None
        if write_status:
            if _status_writer_factory is None:
                raise _fail("--write-status: status write-back is not available in this build", code=2)
            writer = _status_writer_factory({"kubeconfig": kubeconfig, "cluster": cluster})
        settings = daemonmod.Settings(
            snapshot_every=snapshot_every, snapshot_interval=snapshot_interval, retention=retention,
            leader_ttl_ms=leader_ttl, monitor_interval=monitor_interval, speaker_ttl=speaker_ttl, hash_interval=hash_interval, page=page, lb_class=lb_class,
            metallb_namespaces=tuple(metallb_namespace or ("metallb-system",)),
            checkpoint_ms=checkpoint_ms, checkpoint_file=checkpoint_file,
        )
        if replica:
            settings.replica = replica
        from events import stream

        try:
            lg = stream.StreamLog.from_url(redis_url, cluster, page=page)
            from reconciler.runtime.cli.speak import liveness_log

            live_lg = liveness_log(redis_url, cluster, 0.5)
        except ValueError as exc:
            raise _fail(str(exc)) from None
        metrics = Metrics()
        if metrics_port is not None:
            try:
                metrics.serve(metrics_port, metrics_addr)
            except OSError as exc:
                raise _fail(f"--metrics-port {metrics_port}: {exc.strerror or exc}", code=1) from None
        if writer is not None and hasattr(writer, "speaker_statuses"):
            writer.speaker_statuses = lg.speaker_statuses  # the IPNotInNodeSubnet warning reads the status keys
        d = daemonmod.Daemon(lg, settings, metrics=metrics, status_writer=writer, liveness_log=live_lg)
        stop = threading.Event()
        daemonmod.install_signal_handlers(stop)
        logger = logging.getLogger("streamlb.run")
        logger.info("starting", extra={"replica": settings.replica, "cluster": cluster})
        from events.log import LogForbidden

        try:
            d.run(stop)
        except LogForbidden as exc:  # the wrong Redis user for this component: waiting will not help
            logger.error("stopped: %s", exc, extra={"pos": str(d.pos)})
            raise typer.Exit(1) from None
        finally:
            lg.close()
