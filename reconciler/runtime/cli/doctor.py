"""``streamlb doctor``: live checks of a running installation (design.md §10).

Exit codes: 0 healthy (no finding; checks that cannot be made are reported but do not count); 1 findings;
2 Redis cannot be reached or read (one line on stderr, no traceback).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from reconciler.runtime.cli.events import DEFAULT_URL, ClusterName, Output, RedisUrl, _check_output, _fail

STATUS_STYLE = {"ok": "green", "finding": "red", "unknown": "yellow"}


def render(rep: dict, console: Console) -> None:
    t = Table(title="streamlb doctor", title_justify="left")
    for col in ("check", "code", "status", "note"):
        t.add_column(col)
    for c in rep["checks"]:
        style = STATUS_STYLE.get(c["status"], "")
        n = len(c["findings"])
        status = f"[{style}]{c['status']}{f' ({n})' if n else ''}[/]"
        t.add_row(c["title"], c["code"], status, c["note"] or "")
    console.print(t)
    for c in rep["checks"]:
        for f in c["findings"]:
            console.print(f"[red]{f['code']}[/] {f['message']}", markup=True, highlight=False)
            ev = ", ".join(f"{k}={v}" for k, v in f["evidence"].items() if v not in (None, [], ""))
            if ev:
                console.print(f"  evidence: {ev}", markup=False)
            console.print(f"  fix: {f['fix']}", markup=False)
    if rep["healthy"]:
        console.print("[green]healthy[/]: no findings")
    else:
        console.print(f"[red]{rep['findings']} finding(s)[/]")


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor(
        redis_url: RedisUrl = DEFAULT_URL,
        cluster: ClusterName = "default",
        output: Output = "table",
        pool_threshold: Annotated[float, typer.Option(
            "--pool-threshold", min=0.0, max=1.0, help="Report pools used at least this much (fraction).")] = 0.9,
        lag: Annotated[float, typer.Option(
            "--lag", min=0.0, help="Report a replica when an entry has waited this many seconds for it.")] = 30.0,
        snapshot_age: Annotated[float, typer.Option(
            "--snapshot-age", min=0.0,
            help="Report when appended entries wait this many seconds for a snapshot.")] = 600.0,
        lb_class: Annotated[Optional[str], typer.Option(
            "--lb-class", envvar="STREAMLB_LB_CLASS",
            help="The load-balancer class the installation handles (as for `streamlb run`).")] = None,
        acl: Annotated[bool, typer.Option(
            "--acl/--no-acl", help="Check the role users' rights with ACL DRYRUN (nothing is executed).")] = True,
    ) -> None:
        """Check a running installation: speakers, sessions, configuration, pools, L2 subnets, address
        conflicts, replicas, snapshot, dead letters and Redis rights. Each finding has a code, evidence and a fix."""
        from events import log as logmod
        from events import stream
        from reconciler.runtime import doctor as doc

        _check_output(output)
        try:
            lg = stream.StreamLog.from_url(redis_url, cluster)
        except ValueError as exc:
            raise _fail(str(exc)) from None
        try:
            ev = doc.gather(lg, cluster, time.time(), acl=acl, lb_class=lb_class)
        except logmod.LogUnavailable as exc:
            raise _fail(f"cannot reach Redis at {redis_url}: {exc}", code=2) from None
        except stream.redis.exceptions.RedisError as exc:
            raise _fail(f"cannot read the cluster {cluster!r} from Redis: {exc}", code=2) from None
        finally:
            lg.close()
        rep = doc.report(doc.run_checks(ev, doc.Thresholds(pool_threshold, lag, snapshot_age)))
        if output == "json":
            sys.stdout.write(json.dumps(rep, indent=2, sort_keys=True) + "\n")
            sys.stdout.flush()
        else:
            render(rep, Console(highlight=False, soft_wrap=True))
        raise typer.Exit(0 if rep["healthy"] else 1)
