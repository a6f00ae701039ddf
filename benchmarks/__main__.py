"""Run the benchmark suite: ``python -m benchmarks [--quick] [--only NAME] [--json FILE] [--plots DIR]``.

Every ``benchmarks/bench_*.py`` module exposes ``NAME`` and ``run(quick) -> list[dict]``; each row is
``{"name", "unit", "streamlb", "baselines": {label: value}, "higher_is_better", "notes"}`` and may carry a
``"series": [[x, y], ...]`` (with ``"series_x"``/``"series_y"`` axis labels) that becomes a PNG plot. Baselines run
in the same invocation as the figure they are compared with; the ratio column is streamlb / baseline for
"higher is better" figures and baseline / streamlb otherwise, so > 1 always means streamlb is ahead.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    return sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))


def machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cores": None, "cpu": None}
    try:
        import os

        info["cores"] = os.cpu_count()
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    for pkg in ("msgspec", "Cython", "redis"):
        try:
            from importlib.metadata import version

            info[pkg] = version(pkg)
        except Exception:  # noqa: BLE001 - informational only
            info[pkg] = None
    try:
        info["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE.parent, capture_output=True, text=True, timeout=10
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["commit"] = None
    return info


def ratio(row: dict, label: str) -> float | None:
    base = row["baselines"].get(label)
    ours = row["streamlb"]
    if not base or not ours:
        return None
    return ours / base if row.get("higher_is_better", True) else base / ours


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-2:
        return f"{v:.3g}"
    return f"{v:,.2f}"


def plot(rows: list[dict], plots: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    plots.mkdir(parents=True, exist_ok=True)
    for row in rows:
        series = row.get("series")
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        named = series if isinstance(series, dict) else {"streamlb": series}
        xs_all = []
        for label, pts in named.items():
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            xs_all += xs
            ax.plot(xs, ys, marker="o", label=label)
        if xs_all and min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 100:
            ax.set_xscale("log")
        ax.set_xlabel(row.get("series_x", "x"))
        ax.set_ylabel(row.get("series_y", row["unit"]))
        ax.set_title(row["name"])
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        out = plots / (row["name"].replace(" ", "_").replace("/", "_") + ".png")
        fig.savefig(out, dpi=110)
        plt.close(fig)
        written.append(str(out))
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fuzz"]:  # the long decoder fuzz campaign: python -m benchmarks fuzz --n N
        from benchmarks import bench_fuzz

        return bench_fuzz.main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a CI smoke test, no thresholds)")
    ap.add_argument("--only", action="append", default=[], help="run only this benchmark (repeatable)")
    ap.add_argument("--json", type=Path, help="write results as JSON")
    ap.add_argument("--plots", type=Path, help="write PNG plots into this directory")
    args = ap.parse_args(argv)
    names = discover()
    unknown = [n for n in args.only if n not in names]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    selected = args.only or names
    console = Console()
    results: list[dict] = []
    failures: list[str] = []
    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("benchmarks", total=len(selected))
        for name in selected:
            progress.update(task, description=f"bench {name}")
            mod = importlib.import_module(f"benchmarks.bench_{name}")
            t0 = time.perf_counter()
            try:
                rows = mod.run(args.quick)
            except Exception as exc:  # noqa: BLE001 - a broken benchmark is reported, the others still run
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
                rows = []
            for r in rows:
                r["bench"] = name
            results += rows
            console.log(f"{name}: {len(rows)} figure(s) in {time.perf_counter() - t0:.1f} s")
            progress.advance(task)
    table = Table(title=f"streamlb benchmarks ({'quick' if args.quick else 'full'})")
    for col in ("benchmark", "unit", "streamlb", "baseline(s)", "ratio (>1 = streamlb ahead)"):
        table.add_column(col)
    for r in results:
        bl = "\n".join(f"{k}: {fmt(v)}" for k, v in r["baselines"].items()) or "-"
        rt = "\n".join(f"vs {k}: {fmt(ratio(r, k))}×" for k in r["baselines"]) or "-"
        table.add_row(r["name"], r["unit"], fmt(r["streamlb"]), bl, rt)
    console.print(table)
    for r in results:
        if r.get("notes"):
            console.print(f"[dim]{r['name']}: {r['notes']}[/]")
    plots = plot(results, args.plots) if args.plots else []
    for p in plots:
        console.print(f"plot: {p}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": machine(), "quick": args.quick, "seconds": time.perf_counter() - started,
                 "results": results, "failures": failures, "plots": plots},
                indent=2, sort_keys=True,
            )
        )
    for f in failures:
        console.print(f"[red]benchmark failed:[/] {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
