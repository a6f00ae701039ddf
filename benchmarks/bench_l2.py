"""Layer-2 frame building: gratuitous ARP and unsolicited NA frames per second.

What is measured: building frames into memory, no I/O. The streamlb figure is the compiled batch writer
``fastpath.l2.write_arp_burst`` (one request + one reply frame per address, as MetalLB's burst, into one reused
``bytearray``), cycling over 1,024 addresses exactly like the baselines. Beside it, in the same run:

* the C baselines of ``/work/shared/baselines/garp_build.c`` (compiled here with ``gcc -O2``): a 42-byte template
  copied and patched, and every field written — the machine's limit for this work;
* the pure-Python baselines of ``garp_build.py`` (four struct/bytes forms; the best one is reported) and scapy
  (``garp_build_scapy.py``);
* our pure twin (``fastpath._l2_py``) and the single-frame API of both twins.

In full mode, ``valgrind --tool=callgrind`` instruction counts per frame (stable on a shared machine) are added for
the compiled burst writer and the C template baseline.

Also measured: the responder's ARP request parser, compiled vs pure twin.

What is not measured: sending (the kernel's AF_PACKET path costs ~4.6 µs per frame on a veth, see
``/work/shared/baselines/README.md``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINES = Path("/work/shared/baselines")
NAME = "l2"
MAC = bytes.fromhex("020000000001")
IPS = [0x0AC80064 + i for i in range(1024)]  # 10.200.0.100 + i, as the baselines


def _best_rate(fn, per_call: int, runs: int, min_time: float) -> float:
    """Frames per second: the best of ``runs`` loops of at least ``min_time / 4`` seconds each.

    Best-of-N, on both sides of every comparison (the baselines' ``min_s``): on a shared two-core machine the
    median mostly measures the neighbours.
    """
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 >= min_time / 4:
            break
        n *= 2
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        rates.append(n * per_call / (time.perf_counter() - t0))
    return max(rates)


def _compile_c(tmp: Path) -> Path | None:
    gcc = shutil.which("gcc") or shutil.which("cc")
    src = BASELINES / "garp_build.c"
    if gcc is None or not src.exists():
        return None
    exe = tmp / "garp_build"
    subprocess.run([gcc, "-O2", "-o", str(exe), str(src)], check=True, capture_output=True, timeout=120)
    return exe


def _run_json(cmd: list[str], timeout: int = 300) -> dict:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _callgrind_per_frame(cmd_small: list[str], cmd_big: list[str], frames_diff: int, tmp: Path) -> float | None:
    """Instructions per frame: the difference of two callgrind runs divided by the extra frames (start-up cancels)."""
    vg = shutil.which("valgrind")
    if vg is None:
        return None
    totals = []
    for i, cmd in enumerate((cmd_small, cmd_big)):
        out = tmp / f"cg.{i}.out"
        res = subprocess.run([vg, "--tool=callgrind", f"--callgrind-out-file={out}", *cmd],
                             capture_output=True, text=True, timeout=600)
        for line in res.stderr.splitlines():
            if "Collected" in line or "I   refs" in line:
                totals.append(int(line.split(":")[-1].strip().replace(",", "")))
                break
    if len(totals) != 2:
        return None
    return (totals[1] - totals[0]) / frames_diff


def run(quick: bool) -> list[dict]:
    from fastpath import _l2_py, l2

    runs = 3 if quick else 5
    min_time = 0.2 if quick else 1.0
    buf = bytearray(84 * len(IPS))

    def burst():
        l2.write_arp_burst(buf, MAC, IPS)

    py_burst = _best_rate(lambda: _l2_py.write_arp_burst(buf, MAC, IPS), 2 * len(IPS), runs, min_time / 2)

    def single(mod):
        build = mod.build_arp_announce

        def go():
            for ip in IPS:
                build(1, MAC, ip)
        return go

    c_single = _best_rate(single(l2), len(IPS), runs, min_time)
    py_single = _best_rate(single(_l2_py), len(IPS), runs, min_time / 2)

    baselines: dict[str, float] = {}
    notes = [f"fastpath implementation: {l2.IMPLEMENTATION}"]
    cg_rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_l2.") as tmpdir:
        tmp = Path(tmpdir)
        exe = _compile_c(tmp)
        # Interleave rounds of the C baseline and of our burst writer, best of each: on a shared machine both
        # then get the same chances at a quiet moment.
        c_burst = 0.0
        c_tpl = c_fld = 0.0
        # Samples are short on both sides (~2-10 ms: the C program's 2M-frame loops, 2**k calls of ours).
        for _ in range(runs):
            if exe is not None:
                cres = _run_json([str(exe), "2000000", "5"])
                c_tpl = max(c_tpl, cres["c_template"]["loops"] / cres["c_template"]["min_s"])
                c_fld = max(c_fld, cres["c_fields"]["loops"] / cres["c_fields"]["min_s"])
            c_burst = max(c_burst, _best_rate(burst, 2 * len(IPS), 20, 0.008))
        if exe is not None:
            baselines["C template (garp_build.c)"] = c_tpl
            baselines["C all fields (garp_build.c)"] = c_fld
        else:
            notes.append("gcc or garp_build.c missing: no C baseline")
        pres = _run_json([sys.executable, str(BASELINES / "garp_build.py"), "--loops",
                          str(200_000 if quick else 1_000_000), "--runs", str(runs), "--json"])
        best = max(pres, key=lambda k: pres[k]["loops"] / pres[k]["min_s"])
        baselines[f"best pure Python ({best}, garp_build.py)"] = pres[best]["loops"] / pres[best]["min_s"]
        try:
            sres = _run_json([sys.executable, str(BASELINES / "garp_build_scapy.py"), "--loops",
                              str(1_000 if quick else 10_000), "--runs", str(runs), "--json"])
            baselines["scapy (garp_build_scapy.py)"] = sres["scapy"]["loops"] / sres["scapy"]["min_s"]
        except (subprocess.SubprocessError, OSError, ValueError) as exc:
            notes.append(f"scapy baseline failed: {exc}")
        baselines["pure twin write_arp_burst"] = py_burst
        if not quick and exe is not None and l2.IMPLEMENTATION == "c":
            root = Path(__file__).resolve().parents[1]
            script = ("import sys; sys.path.insert(0, %r)\n"
                      "from fastpath import l2\nmac = bytes.fromhex('020000000001')\n"
                      "ips = [0x0AC80064 + i for i in range(1024)]\nbuf = bytearray(84 * 1024)\n"
                      "for _ in range(int(sys.argv[1])): l2.write_arp_burst(buf, mac, ips)\n") % str(root)
            (tmp / "burst.py").write_text(script)
            ours = _callgrind_per_frame([sys.executable, str(tmp / "burst.py"), "10"],
                                        [sys.executable, str(tmp / "burst.py"), "110"], 100 * 2048, tmp)
            theirs = _callgrind_per_frame([str(exe), "100000", "1"], [str(exe), "1100000", "1"], 2 * 1_000_000, tmp)
            if ours and theirs:
                cg_rows.append({
                    "name": "GARP batch build, callgrind instructions/frame",
                    "unit": "instructions/frame", "streamlb": ours,
                    "baselines": {"garp_build.c (mean of its template and all-fields loops)": theirs},
                    "higher_is_better": False,
                    "notes": "difference of two callgrind runs per frame; the C figure averages its two variants",
                })
    c_ns = 1e9 / c_burst
    c_base = baselines.get("C template (garp_build.c)")
    if c_base:
        notes.append(f"{c_ns:.2f} ns/frame vs C template {1e9 / c_base:.2f} ns/frame "
                     f"({c_ns / (1e9 / c_base):.2f}x the C time; target <= 3x)")
    rows = [
        {
            "name": "GARP batch build (write_arp_burst)",
            "unit": "frames/s",
            "streamlb": c_burst,
            "baselines": baselines,
            "higher_is_better": True,
            "notes": "; ".join(notes),
        },
        {
            "name": "GARP single-frame build (build_arp_announce)",
            "unit": "frames/s",
            "streamlb": c_single,
            "baselines": {"pure twin build_arp_announce": py_single},
            "higher_is_better": True,
            "notes": "one Python call per frame: the call overhead dominates; prefer the batch writer",
        },
    ]
    ips6 = [(0x20010DB8 << 96) | i for i in range(256)]
    buf6 = bytearray(86 * len(ips6))
    c_na = _best_rate(lambda: l2.write_ndp_burst(buf6, MAC, ips6), len(ips6), runs, min_time)
    py_na = _best_rate(lambda: _l2_py.write_ndp_burst(buf6, MAC, ips6), len(ips6), runs, min_time / 2)
    na_base = {"pure twin write_ndp_burst": py_na}
    try:
        import logging

        logging.getLogger("scapy").setLevel(logging.ERROR)
        from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
        from scapy.layers.l2 import Ether

        texts = [str(__import__("ipaddress").IPv6Address(ip)) for ip in ips6[:50]]

        def scapy_na():
            for t in texts:
                bytes(Ether(dst="33:33:00:00:00:01", src="02:00:00:00:00:01")
                      / IPv6(src="fe80::ff:fe00:1", dst="ff02::1", hlim=255)
                      / ICMPv6ND_NA(R=0, S=0, O=1, tgt=t) / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:01"))

        na_base["scapy"] = _best_rate(scapy_na, len(texts), runs, min_time / 4)
    except ImportError:
        pass
    rows.append({
        "name": "unsolicited NA batch build (write_ndp_burst)",
        "unit": "frames/s",
        "streamlb": c_na,
        "baselines": na_base,
        "higher_is_better": True,
        "notes": "86-byte frames with the ICMPv6 checksum computed per frame",
    })
    requests = [bytes.fromhex("ffffffffffff020000000099080600010800060400010200000000990a000007000000000000")
                + ip.to_bytes(4, "big") for ip in IPS]

    def parse(mod):
        fn = mod.parse_arp_request

        def go():
            for f in requests:
                fn(f, MAC)
        return go

    rows.append({
        "name": "ARP request parse (parse_arp_request)",
        "unit": "frames/s",
        "streamlb": _best_rate(parse(l2), len(requests), runs, min_time),
        "baselines": {"pure twin parse_arp_request": _best_rate(parse(_l2_py), len(requests), runs, min_time / 2)},
        "higher_is_better": True,
        "notes": "the responder's per-packet check and request object (one Python call per frame)",
    })
    return rows + cg_rows
