"""Run the benchmark suite: ``python -m benchmarks [--quick] [--only NAME] [--json FILE] [--plots DIR] [--report MD]``.

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
    if abs(v) >= 1e5 or abs(v) < 1:
        return f"{v:.3g}"
    return f"{v:,.2f}"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def _bars(plt, row: dict, plots: Path) -> str:
    """One figure against all its baselines: absolute values on a log axis, streamlb highlighted."""
    import textwrap

    items = [("streamlb", row["streamlb"])] + [(k, v) for k, v in row["baselines"].items() if v]
    fig, ax = plt.subplots(figsize=(7.6, 0.5 * len(items) + 1.5))
    ax.barh(range(len(items)), [v for _, v in items],
            color=["#2a7ab9"] + ["#9aa5b1"] * (len(items) - 1))
    ax.set_yticks(range(len(items)), ["\n".join(textwrap.wrap(k, 40)) for k, _ in items], fontsize=8)
    ax.invert_yaxis()
    vals = [v for _, v in items if v > 0]
    if vals and max(vals) / min(vals) >= 8:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # labels on the decades only: no overlapping minor labels
    better = "higher is better" if row.get("higher_is_better", True) else "lower is better"
    ax.set_xlabel(f"{row['unit']} ({better})")
    ax.set_title(row.get("plot_title", row["name"]), fontsize=10)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    out = plots / (_slug(row["name"]) + ".png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    row["plot_file"] = out.name
    return str(out)


def plot(rows: list[dict], plots: Path) -> list[str]:
    """One PNG per row with a ``series`` (lines; or an empirical CDF when ``"plot": "cdf"``), plus
    ``summary.png``: every ratio on one log-scaled bar chart. Axes that span two decades or more go log-scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    plots.mkdir(parents=True, exist_ok=True)
    for row in rows:
        series = row.get("series")
        if not series:
            if row.get("plot") == "bars" or len(row["baselines"]) >= 3:
                written.append(_bars(plt, row, plots))
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        named = series if isinstance(series, dict) else {"streamlb": series}
        xs_all: list[float] = []
        ys_all: list[float] = []
        if row.get("plot") == "cdf":
            for label, values in named.items():
                vals = sorted(values)
                n = len(vals)
                if not n:
                    continue
                ax.step(vals, [(i + 1) / n for i in range(n)], where="post", label=f"{label} (n={n})")
                xs_all += vals
            ax.set_ylabel("fraction of trials ≤ x")
            ax.set_ylim(0, 1.02)
        else:
            for label, pts in named.items():
                xs, ys = [p[0] for p in pts], [p[1] for p in pts]
                xs_all += xs
                ys_all += ys
                ax.plot(xs, ys, marker="o", label=label)
            ax.set_ylabel(row.get("series_y", row["unit"]))
            pos = [y for y in ys_all if y > 0]
            if pos and max(pos) / min(pos) >= 8:  # a line far below its ceiling stays readable
                ax.set_yscale("log")
        pos_x = [x for x in xs_all if x > 0]
        if pos_x and len(pos_x) == len(xs_all) and max(pos_x) / min(pos_x) >= 10:  # sizes spanning a decade or more
            ax.set_xscale("log")
        ax.set_xlabel(row.get("series_x", row["unit"]))
        ax.set_title(row.get("plot_title", row["name"]))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        out = plots / (_slug(row["name"]) + ".png")
        fig.savefig(out, dpi=110)
        plt.close(fig)
        written.append(str(out))
        row["plot_file"] = out.name
    # the summary: each figure against its first (headline) baseline, one bar each
    bars = [(f"{r['name']}  vs  {next(iter(r['baselines']))}", ratio(r, next(iter(r["baselines"]))))
            for r in rows if r["baselines"]]
    import textwrap

    bars = [("\n".join(textwrap.wrap(label, 62)), v) for label, v in bars if v]
    if bars:
        fig, ax = plt.subplots(figsize=(12.0, 0.36 * len(bars) + 1.6))
        vals = [b[1] for b in bars]
        ax.barh(range(len(vals)), vals, color=["#2a7ab9" if v >= 1 else "#9aa5b1" for v in vals])
        ax.set_yticks(range(len(vals)), [b[0] for b in bars], fontsize=7)
        ax.invert_yaxis()
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("streamlb ÷ baseline, same run (×, log scale; > 1 = streamlb ahead; grey: below 1, "
                      "mostly ceilings)")
        ax.set_title("streamlb against its baselines", loc="left")
        ax.grid(True, axis="x", which="both", alpha=0.3)
        fig.tight_layout()
        out = plots / "summary.png"
        fig.savefig(out, dpi=110)
        plt.close(fig)
        written.append(str(out))
    return written


def report(path: Path, results: list[dict], info: dict, quick: bool, plots_dir: Path | None,
           failures: list[str]) -> None:
    """Write the Markdown report: machine, one table, the plots, and each benchmark's own statement of what it
    measures and what it deliberately does not (its module docstring)."""
    rel = None
    if plots_dir is not None:
        try:
            rel = plots_dir.resolve().relative_to(path.resolve().parent)
        except ValueError:
            rel = plots_dir.resolve()
    lines = [
        "# streamlb benchmarks",
        "",
        "Generated by `python -m benchmarks"
        + (" --quick" if quick else "")
        + f" --report {path}"
        + (f" --plots {plots_dir}" if plots_dir is not None else "")
        + "`; do not edit by hand. Every baseline ran in the same invocation as the figure it is compared with;",
        "on shared machines the **ratios** are the result, the absolute figures only describe this run.",
        "",
        "## How to reproduce",
        "",
        "```sh",
        "./scripts/test                      # once: installs Debian + pip dependencies and builds the extensions",
        ".venv/bin/python -m benchmarks --report docs/benchmarks.md --plots docs/img --json bench-out/full.json",
        "```",
        "",
        "A full run takes about 12 minutes on 2 cores. `--quick` runs small sizes in one to two minutes (CI runs it "
        "as a smoke test, without thresholds); `--only NAME` runs one benchmark; `--from-json FILE` re-prints, "
        "re-plots and re-reports saved results without running anything.",
        "",
        "## Machine",
        "",
    ]
    for k in sorted(info):
        lines.append(f"- {k}: `{info[k]}`")
    lines += ["", "## Results", "", "| benchmark | unit | streamlb | baseline | ratio (> 1 = streamlb ahead) |",
              "|---|---|---:|---|---:|"]
    for r in results:
        if r["baselines"]:
            for i, (k, v) in enumerate(r["baselines"].items()):
                first = i == 0
                lines.append(
                    f"| {r['name'] if first else ''} | {r['unit'] if first else ''} | "
                    f"{fmt(r['streamlb']) if first else ''} | {k}: {fmt(v)} | {fmt(ratio(r, k))}× |"
                )
        else:
            lines.append(f"| {r['name']} | {r['unit']} | {fmt(r['streamlb'])} | - | - |")
    notes = [r for r in results if r.get("notes")]
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"- **{r['name']}**: {r['notes']}" for r in notes]
    if failures:
        lines += ["", "Benchmarks that failed in this run:", ""] + [f"- {f}" for f in failures]
    if rel is not None:
        lines += ["", "## Plots", ""]
        if (plots_dir / "summary.png").exists():
            lines += [f"![every ratio on one chart]({rel}/summary.png)", ""]
        for r in results:
            if r.get("plot_file"):
                lines += [f"### {r.get('plot_title', r['name'])}", "", f"![{r['name']}]({rel}/{r['plot_file']})", ""]
    lines += ["", "## What each benchmark measures, and what it does not", ""]
    for name in sorted({r["bench"] for r in results}):
        doc = (importlib.import_module(f"benchmarks.bench_{name}").__doc__ or "").strip()
        lines += [f"### `{name}`", "", doc or "(no description)", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip() + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fuzz"]:  # the long decoder fuzz campaign: python -m benchmarks fuzz --n N
        from benchmarks import bench_fuzz

        return bench_fuzz.main(argv[1:])
    if argv[:1] == ["bfd-fuzz"]:  # the BFD decoder campaign: python -m benchmarks bfd-fuzz --n N
        from benchmarks import bench_bfd

        return bench_bfd.main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a CI smoke test, no thresholds)")
    ap.add_argument("--only", action="append", default=[], help="run only this benchmark (repeatable)")
    ap.add_argument("--json", type=Path, help="write results as JSON")
    ap.add_argument("--plots", type=Path, help="write PNG plots into this directory")
    ap.add_argument("--report", type=Path, help="write a Markdown report (table, plots, method) to this file")
    ap.add_argument("--from-json", type=Path, metavar="FILE",
                    help="do not run anything: print, plot and report the results saved in FILE by --json")
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
    info = None
    if args.from_json:
        try:
            saved = json.loads(args.from_json.read_text())
            results, failures, info, args.quick = saved["results"], saved["failures"], saved["machine"], saved["quick"]
        except (OSError, ValueError, KeyError) as exc:
            print(f"{args.from_json}: not a results file written by --json ({exc})", file=sys.stderr)
            return 2
        selected = []
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
    if args.report and not args.plots:
        args.plots = args.report.parent / "img"
    plots = plot(results, args.plots) if args.plots else []
    for p in plots:
        console.print(f"plot: {p}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"machine": info or machine(), "quick": args.quick, "seconds": time.perf_counter() - started,
                 "results": results, "failures": failures, "plots": plots},
                indent=2,  # key order kept: a row's first baseline is its headline comparison
            )
        )
    if args.report:
        report(args.report, results, info or machine(), args.quick, args.plots, failures)
        console.print(f"report: {args.report}")
    for f in failures:
        console.print(f"[red]benchmark failed:[/] {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
