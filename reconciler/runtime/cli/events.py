"""``streamlb events append|tail|export|import|deadletters``: producers and inspectors of the Redis event stream.

Exit codes: 0 success; 1 Redis unreachable; 2 bad input (unreadable file, undetectable format, refused records —
the valid records of the input are still appended, refused ones never are, in part or in whole).
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Annotated, Optional

import msgspec
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

app = typer.Typer(help="Append to, read and export the Redis event stream.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

RedisUrl = Annotated[str, typer.Option("--redis-url", envvar="STREAMLB_REDIS_URL",
                                       help="Redis URL (redis://, rediss://, unix://, redis+sentinel://, "
                                            "redis+cluster://).")]
ClusterName = Annotated[str, typer.Option("--cluster", envvar="STREAMLB_CLUSTER",
                                          help="streamlb cluster name (keys streamlb:{NAME}:...).")]
Output = Annotated[str, typer.Option("--output", "-o", help="json or table.")]
DEFAULT_URL = "redis://127.0.0.1:6379/0"
PROGRESS_MIN = 5_000  # records; smaller inputs need no progress bar


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"streamlb: error: {message}", markup=False)
    return typer.Exit(code)


def open_log(url: str, cluster: str, **kw):
    from events import stream

    try:
        return stream.StreamLog.from_url(url, cluster, **kw)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _unavailable(exc: Exception) -> typer.Exit:
    return _fail(f"{exc} (is Redis running? set --redis-url / STREAMLB_REDIS_URL)", code=1)


def _forbidden(exc: Exception) -> typer.Exit:
    """A Redis ACL refusal (NOPERM): one line naming the command, key, user and role; exit 1."""
    return _fail(str(exc), code=1)


def _check_output(output: str) -> None:
    if output not in ("json", "table"):
        raise _fail(f"--output must be json or table, not {output!r}")


def _progress(total: int, enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err, disable=not enabled, transient=True)


@app.command()
def append(
    files: Annotated[list[Path], typer.Argument(help="Input files: .evlog, JSON lines (native or watch events), YAML.")],
    redis_url: RedisUrl = DEFAULT_URL,
    cluster: ClusterName = "default",
    batch: Annotated[int, typer.Option("--batch", min=1, help="Entries per pipelined XADD round trip.")] = 1000,
    metallb_namespace: Annotated[Optional[list[str]], typer.Option(
        "--metallb-namespace", envvar="STREAMLB_METALLB_NAMESPACE",
        help="Namespace whose MetalLB objects count (repeatable).")] = None,
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress",
                                                     help="Progress bar (default: on a terminal, big inputs).")] = None,
) -> None:
    """Validate the inputs and append their events to the stream (batched XADD).

    A record that is refused (invalid JSON, an invalid object, a watch ERROR) is reported with its file, record
    number and reason, and nothing from it is appended; the other records are.
    """
    from events import inputs, log as logmod

    opts = inputs.Options(metallb_namespaces=tuple(metallb_namespace or ("metallb-system",)))
    try:
        records = list(inputs.read_files([str(f) for f in files], opts))
    except inputs.InputError as exc:
        raise _fail(str(exc)) from None
    events, refused, ignored = [], 0, 0
    for rec in records:
        reasons = [o.reason for o in rec.outcomes if isinstance(o, inputs.Rejected)]
        if reasons:
            refused += 1
            for r in reasons:
                err.print(f"{rec.file}:{rec.number}: refused: {r}", markup=False)
            continue
        for o in rec.outcomes:
            if isinstance(o, inputs.Accepted):
                events.append(o.event)
            elif isinstance(o, inputs.Ignored):
                ignored += 1
    lg = open_log(redis_url, cluster, batch=batch)
    show = progress if progress is not None else (err.is_terminal and len(events) >= PROGRESS_MIN)
    from events import codec

    appended = 0
    try:
        with _progress(len(events), show) as bar:
            task = bar.add_task("appending", total=len(events))
            for i in range(0, len(events), batch):
                chunk = events[i:i + batch]
                lg.append_raw([codec.encode(e) for e in chunk])
                appended += len(chunk)
                bar.update(task, advance=len(chunk))
    except logmod.LogUnavailable as exc:
        err.print(f"streamlb: appended {appended} of {len(events)} events before the failure", markup=False)
        raise _unavailable(exc) from None
    except logmod.LogForbidden as exc:
        raise _fail(f"{exc}; appended {appended} of {len(events)} events", code=1) from None
    finally:
        lg.close()
    err.print(f"appended {appended} events from {len(records)} records"
              f"{f', {ignored} ignored' if ignored else ''}{f', {refused} refused' if refused else ''}", markup=False)
    if refused:
        raise typer.Exit(2)


def _entry_json(rec) -> dict:
    from events import codec, log as logmod

    try:
        return {"pos": str(rec.position), "event": codec.to_builtins(logmod.decode_record(rec))}
    except codec.DecodeError as exc:
        return {"pos": str(rec.position), "error": str(exc), "e": base64.b64encode(rec.data).decode()}


@app.command()
def tail(
    redis_url: RedisUrl = DEFAULT_URL,
    cluster: ClusterName = "default",
    count: Annotated[int, typer.Option("--count", "-n", min=0, help="How many of the newest entries.")] = 10,
    after: Annotated[Optional[str], typer.Option("--after", help="Start after this stream ID instead.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new entries (Ctrl-C stops).")] = False,
    output: Output = "json",
) -> None:
    """Print the newest entries of the stream as JSON lines (``{"pos", "event"}``), optionally following it."""
    from events import log as logmod
    from events.position import ZERO, Position

    _check_output(output)
    lg = open_log(redis_url, cluster)
    console = Console(highlight=False, soft_wrap=True)

    def emit(rec) -> None:
        obj = _entry_json(rec)
        if output == "json":
            sys.stdout.write(msgspec.json.encode(obj).decode() + "\n")
            sys.stdout.flush()
        else:
            body = obj.get("event") or {"error": obj["error"]}
            console.print(f"{obj['pos']:>22}  {msgspec.json.encode(body).decode()}", markup=False)

    try:
        if after is not None:
            try:
                pos = Position.parse(after)
            except ValueError as exc:
                raise _fail(str(exc)) from None
            recs = list(lg.read(pos, limit=None if follow else count or None))
        else:
            recs = lg.newest(count)
            pos = ZERO
        for rec in recs:
            emit(rec)
            pos = rec.position
        if follow:
            if after is None and not recs:
                pos = lg.head()
            while True:
                for rec in lg.follow(pos, timeout_ms=1000):
                    emit(rec)
                    pos = rec.position
    except logmod.LogUnavailable as exc:
        raise _unavailable(exc) from None
    except logmod.LogForbidden as exc:
        raise _forbidden(exc) from None
    except KeyboardInterrupt:
        pass
    finally:
        lg.close()


@app.command()
def export(
    to: Annotated[Path, typer.Option("--to", help="Output .evlog file (overwritten).")],
    redis_url: RedisUrl = DEFAULT_URL,
    cluster: ClusterName = "default",
) -> None:
    """Write the whole stream to an evlog file (undecodable entries are left out and counted)."""
    import os

    from events import codec, log as logmod, logfile

    lg = open_log(redis_url, cluster)
    tmp = to.with_name(to.name + ".tmp")
    written = skipped = 0
    try:
        with open(tmp, "wb") as f:
            f.write(logfile.encode_file([]))
            for rec in lg.read():
                try:
                    event = logmod.decode_record(rec)
                except codec.DecodeError:
                    skipped += 1
                    continue
                blob = rec.data if rec.version == codec.FORMAT_VERSION else codec.encode(event)
                f.write(len(blob).to_bytes(4, "big") + blob)
                written += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, to)
    except (logmod.LogUnavailable, logmod.LogForbidden) as exc:
        tmp.unlink(missing_ok=True)
        raise (_forbidden(exc) if isinstance(exc, logmod.LogForbidden) else _unavailable(exc)) from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _fail(f"{to}: cannot write: {exc.strerror or exc}") from None
    finally:
        lg.close()
    err.print(f"exported {written} events to {to}{f', {skipped} undecodable entries left out' if skipped else ''}",
              markup=False)


@app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help=".evlog files (as written by `events export`).")],
    redis_url: RedisUrl = DEFAULT_URL,
    cluster: ClusterName = "default",
    batch: Annotated[int, typer.Option("--batch", min=1)] = 1000,
) -> None:
    """Append the frames of evlog files to the stream as they are (each validated first)."""
    from events import codec, log as logmod, logfile

    frames: list[bytes] = []
    refused = 0
    for path in files:
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise _fail(f"{path}: cannot read: {exc.strerror or exc}") from None
        try:
            version = logfile.read_header(blob)
        except logmod.LogCorrupt as exc:
            raise _fail(f"{path}: {exc}") from None
        for fr in logfile.iter_frames(blob):
            if fr.data is None:
                err.print(f"{path}:{fr.index}: refused: {fr.problem}", markup=False)
                refused += 1
                continue
            try:
                ev = logmod.decode_record(logmod.Record(None, fr.data, version))  # type: ignore[arg-type]
            except codec.DecodeError as exc:
                err.print(f"{path}:{fr.index}: refused: {exc}", markup=False)
                refused += 1
                continue
            frames.append(fr.data if version == codec.FORMAT_VERSION else codec.encode(ev))
    lg = open_log(redis_url, cluster, batch=batch)
    try:
        lg.append_raw(frames)
    except logmod.LogUnavailable as exc:
        raise _unavailable(exc) from None
    except logmod.LogForbidden as exc:
        raise _forbidden(exc) from None
    finally:
        lg.close()
    err.print(f"imported {len(frames)} events{f', {refused} refused' if refused else ''}", markup=False)
    if refused:
        raise typer.Exit(2)


@app.command()
def deadletters(
    redis_url: RedisUrl = DEFAULT_URL,
    cluster: ClusterName = "default",
    count: Annotated[Optional[int], typer.Option("--count", "-n", min=0, help="At most this many.")] = None,
    output: Output = "table",
) -> None:
    """List dead-lettered entries: original stream ID, reason, original bytes (base64)."""
    from events import log as logmod

    _check_output(output)
    lg = open_log(redis_url, cluster)
    try:
        rows = list(lg.deadletters(limit=count))
    except logmod.LogUnavailable as exc:
        raise _unavailable(exc) from None
    except logmod.LogForbidden as exc:
        raise _forbidden(exc) from None
    finally:
        lg.close()
    if output == "json":
        out = [{"pos": str(p), "reason": r, "e": base64.b64encode(e).decode()} for p, r, e in rows]
        sys.stdout.write(msgspec.json.encode(out).decode() + "\n")
        return
    from rich.table import Table

    table = Table(title=f"dead letters ({len(rows)})")
    for col in ("position", "reason", "bytes"):
        table.add_column(col)
    for p, r, e in rows:
        table.add_row(str(p), r, str(len(e)))
    Console(highlight=False).print(table)
