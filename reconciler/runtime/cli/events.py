"""``streamlb events append|tail|export|import|deadletters``: producers and inspectors of the Redis event stream.

Exit codes: 0 success; 1 Redis unreachable; 2 bad input (unreadable file, undetectable format, refused records —
the valid records of the input are still appended, refused ones never are, in part or in whole).
"""

from __future__ import annotations

import base64
import multiprocessing
import os
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
PROGRESS_MIN_BYTES = 2_000_000  # smaller inputs need no progress bar
PARALLEL_MIN_BYTES = 8_000_000  # JSON-lines files at least this big are decoded by worker processes
PARALLEL_SLICE = 4_000  # lines per worker job


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


def _progress(enabled: bool) -> Progress:
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
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=0, help="Processes decoding a big JSON-lines input "
                                      "(0: the CPUs but two, at most 4; 1: none, this process decodes); order "
                                      "is kept.")] = 0,
) -> None:
    """Validate the inputs and append their events to the stream (batched XADD).

    A record that is refused (invalid JSON, an invalid object, a watch ERROR) is reported with its file, record
    number and reason, and nothing from it is appended; the other records are.
    """
    import gc

    from events import codec, inputs, log as logmod

    opts = inputs.Options(metallb_namespaces=tuple(metallb_namespace or ("metallb-system",)))
    try:  # every file is read and its format detected before anything is appended
        sources = [inputs.open_input(str(f), opts) for f in files]
    except inputs.InputError as exc:
        raise _fail(str(exc)) from None
    size = sum(f.stat().st_size for f in files)
    show = progress if progress is not None else (err.is_terminal and size >= PROGRESS_MIN_BYTES)
    lg = open_log(redis_url, cluster, batch=batch)
    gc.freeze()  # what exists now lives to the end: the collector need not walk it again and again
    # records stream through decode -> translate -> (validate) -> encode into a chunk; a full chunk is one
    # pipelined round trip, sent while the next chunk is being prepared. Nothing is kept per record, so memory
    # stays flat however long the input. A JSON-lines file (the common case: a watch log) goes through
    # inputs.encode_lines, `batch` lines at a time, in worker processes when it is big.
    encode = codec.encode
    packable = lg.packable
    appended = 0
    counts = {"records": 0, "refused": 0, "ignored": 0}
    # workers pay only with a core each beyond this process's and the Redis server's: on 2 CPUs one process
    # decoding alone appends faster (measured: ~95k vs ~75k events/s) than two workers feeding it
    jobs = jobs or min(4, max(1, (os.cpu_count() or 1) - 2))
    pool = None
    parallel = [isinstance(src, list) and jobs > 1 and packable and f.stat().st_size >= PARALLEL_MIN_BYTES
                for f, src in zip(files, sources)]
    if any(parallel):
        # the workers are forked with the lines in memory (shared, copy-on-write); a job is a range of lines
        global _SHARED
        _SHARED = (sources, opts, lg.pack, batch)
        pool = multiprocessing.get_context("fork").Pool(jobs)

    def take(path: Path, first: int, enc: inputs.Encoded) -> None:
        """Count a run of records; its refusals are numbered within the file (``first``: its records before)."""
        for rel, reason in enc.refusals:
            err.print(f"{path}:{counts['records'] - first + rel}: refused: {reason}", markup=False)
        counts["refused"] += len({rel for rel, _ in enc.refusals})
        counts["ignored"] += enc.ignored
        counts["records"] += enc.records

    def payloads():
        """(packed XADDs, how many) per round trip; or, for a client that cannot take packed commands (Redis
        Cluster), (list of encoded events, how many)."""
        chunk: list[bytes] = []
        for i, (path, src) in enumerate(zip(files, sources)):
            first = counts["records"]
            if isinstance(src, list) and chunk:  # what earlier files left goes first: order is kept
                yield (lg.pack(chunk) if packable else chunk), len(chunk)
                chunk = []
            if parallel[i]:
                jobs_ = ((i, k, k + PARALLEL_SLICE) for k in range(0, len(src), PARALLEL_SLICE))
                for parts in pool.imap(_encode_slice, jobs_):
                    for enc, payload, n in parts:
                        take(path, first, enc)
                        if n:
                            yield payload, n
                continue
            if isinstance(src, list):
                for k in range(0, len(src), batch):
                    enc = inputs.encode_lines(src, opts, k, k + batch)
                    take(path, first, enc)
                    if enc.blobs:
                        yield (lg.pack(enc.blobs) if packable else enc.blobs), len(enc.blobs)
                continue
            for rec in src:
                counts["records"] += 1
                outcomes = rec.outcomes
                if len(outcomes) == 1 and type(outcomes[0]) is inputs.Accepted:  # the common case
                    chunk.append(encode(outcomes[0].event))
                else:
                    reasons = [o.reason for o in outcomes if isinstance(o, inputs.Rejected)]
                    if reasons:
                        counts["refused"] += 1
                        for r in reasons:
                            err.print(f"{rec.file}:{rec.number}: refused: {r}", markup=False)
                    else:
                        for o in outcomes:
                            if isinstance(o, inputs.Accepted):
                                chunk.append(encode(o.event))
                            elif isinstance(o, inputs.Ignored):
                                counts["ignored"] += 1
                if len(chunk) >= batch:
                    yield (lg.pack(chunk) if packable else chunk), len(chunk)
                    chunk = []
        if chunk:
            yield (lg.pack(chunk) if packable else chunk), len(chunk)

    if packable:
        done = lg.append_packed(payloads())
    else:
        done = (len(ps) for ps in lg.append_chunks(blobs for blobs, _ in payloads()))
    try:
        with _progress(show) as bar:
            task = bar.add_task("appending", total=_estimate_records(files) if show else None)
            for n in done:
                appended += n
                bar.update(task, completed=counts["records"])
            bar.update(task, completed=counts["records"], total=counts["records"])
    except logmod.LogUnavailable as exc:
        err.print(f"streamlb: appended {appended} events (of the first {counts['records']} records) before the "
                  "failure", markup=False)
        raise _unavailable(exc) from None
    except logmod.LogForbidden as exc:
        raise _fail(f"{exc}; appended {appended} events (of the first {counts['records']} records)",
                    code=1) from None
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        lg.close()
    records, refused, ignored = counts["records"], counts["refused"], counts["ignored"]
    err.print(f"appended {appended} events from {records} records"
              f"{f', {ignored} ignored' if ignored else ''}{f', {refused} refused' if refused else ''}", markup=False)
    if refused:
        raise typer.Exit(2)


_SHARED = None  # (sources, options, pack, batch), set before the worker processes are forked


def _encode_slice(job: tuple[int, int, int]) -> list:
    """In a worker process: lines ``[start, stop)`` of JSON-lines source ``i``, ``batch`` lines at a time, as
    (inputs.Encoded without its blobs, the blobs packed as XADDs, how many) triples."""
    from events import inputs

    i, start, stop = job
    sources, opts, pack, batch = _SHARED
    lines = sources[i]
    out = []
    for k in range(start, min(stop, len(lines)), batch):
        enc = inputs.encode_lines(lines, opts, k, min(k + batch, stop))
        blobs, enc.blobs = enc.blobs, []  # they travel packed, once
        out.append((enc, pack(blobs) if blobs else b"", len(blobs)))
    return out


def _estimate_records(files: list[Path]) -> int | None:
    """Roughly how many records the inputs hold, for the progress bar's total (lines of text; frames of evlog)."""
    from events import logfile

    total = 0
    for f in files:
        try:
            blob = f.read_bytes()
        except OSError:
            return None
        if logfile.is_evlog(blob):
            total += sum(1 for _ in logfile.iter_frames(blob))
        else:
            total += blob.count(b"\n") + (0 if blob.endswith(b"\n") else 1)
    return total


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
