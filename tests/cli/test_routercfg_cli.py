"""``streamlb router-config`` as users see it: golden output per vendor, determinism, files, errors.

The golden files in ``tests/golden/routercfg/`` change only through ``pytest --update-golden`` with a commit that says
why. The frr and bird goldens are also loaded by the real daemons (``tests/integration/test_router_config.py``);
the cisco-nxos, arista-eos and junos goldens were reviewed line by line against the vendors' documented syntax.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.runtime.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "routercfg"
INPUT = GOLDEN / "cluster.yaml"
runner = CliRunner()

CASES = [
    ("10.0.0.1", "frr", "frr.conf"),
    ("10.0.0.1", "bird", "bird.conf"),
    ("10.0.0.1", "cisco-nxos", "cisco-nxos.conf"),
    ("10.0.0.1", "arista-eos", "arista-eos.conf"),
    ("10.0.0.1", "junos", "junos.conf"),
    ("fd00::1", "frr", "frr-v6.conf"),
    ("fd00::1", "bird", "bird-v6.conf"),
]


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=120)


@pytest.mark.parametrize(("router", "vendor", "name"), CASES, ids=[c[2] for c in CASES])
def test_golden(router: str, vendor: str, name: str, update_golden: bool) -> None:
    res = runner.invoke(app, ["router-config", "--log", str(INPUT), "--router", router, "--vendor", vendor])
    assert res.exit_code == 0, res.output
    path = GOLDEN / name
    if update_golden:
        path.write_text(res.stdout)
    assert res.stdout == path.read_text()


def test_goldens_cover_every_vendor_and_the_features() -> None:
    from reconciler.runtime.cli.routercfg import VENDORS

    assert {v for _, v, _ in CASES} == set(VENDORS)
    frr = (GOLDEN / "frr.conf").read_text()
    # two racks with their own AS: per-node remote AS and multipath relax; the excluded node is left out
    assert " neighbor 10.0.0.11 remote-as 65001\n" in frr and " neighbor 10.0.1.13 remote-as 65002\n" in frr
    assert " bgp bestpath as-path multipath-relax\n" in frr and "10.0.1.14" not in frr
    # rack1 gets the /28 aggregates (prod-aggregate names peer rack1); rack2 gets legacy and edge, minus .0/.255
    assert "permit 192.0.2.0/26 ge 28 le 28" in frr and "seq 5 deny 203.0.113.0/32" in frr
    assert "maximum-prefix 68 force" in frr and "maximum-prefix 329 force" in frr  # 64+4; 64+11+(256-2)
    assert "not-in-the-log" not in frr and frr.count("STREAMLB-PASSWORD-PLACEHOLDER") == 6  # 3 comments + 3 lines


def test_same_output_under_any_hash_seed(tmp_path: Path) -> None:
    outs = set()
    for seed in ("0", "4242"):
        r = _run("router-config", "--log", str(INPUT), "--router", "10.0.0.1", "--vendor", "junos",
                 env={"PYTHONHASHSEED": seed})
        assert r.returncode == 0, r.stderr
        outs.add(r.stdout)
    assert len(outs) == 1


def test_output_file(tmp_path: Path) -> None:
    out = tmp_path / "frr.conf"
    res = runner.invoke(app, ["router-config", "--log", str(INPUT), "--router", "10.0.0.1", "--vendor", "frr",
                              "--output", str(out)])
    assert res.exit_code == 0 and res.stdout == ""
    assert out.read_text() == (GOLDEN / "frr.conf").read_text()


def test_the_readme_shows_what_the_example_generates() -> None:
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"```sh\n\$ (streamlb router-config [^\n]*)\n```\n\n```\n(.*?)```", readme, re.S)
    assert m, "README: no router-config example"
    args = m.group(1).split()[1:]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert res.stdout == m.group(2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--router", "10.9.9.9", "--vendor", "frr"], "no BGPPeer has peerAddress 10.9.9.9 (peer addresses in the "
                                                      "log: 10.0.0.1, fd00::1)"),
        (["--router", "10.0.0.1", "--vendor", "ios"], "--vendor must be one of frr, bird, cisco-nxos, arista-eos, "
                                                      "junos, not 'ios'"),
        (["--router", "10.0.0.1/32", "--vendor", "frr"], "--router '10.0.0.1/32' is not an IP address"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    r = _run("router-config", "--log", str(INPUT), *args)
    assert r.returncode == 2, r.stdout
    assert r.stderr.strip() == f"streamlb: error: {message}" and "Traceback" not in r.stderr


def test_bad_logs(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    r = _run("router-config", "--log", str(missing), "--router", "10.0.0.1", "--vendor", "frr")
    assert r.returncode == 2 and "missing.yaml" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "k8s.upsert", "obj": {"kind": "Node"}}\n')
    r = _run("router-config", "--log", str(INPUT), "--log", str(bad), "--router", "10.0.0.1", "--vendor", "frr")
    assert r.returncode == 2 and f"{bad}:1:" in r.stderr and "Traceback" not in r.stderr
    r = _run("router-config", "--router", "10.0.0.1", "--vendor", "frr")
    assert r.returncode == 2 and "give --log FILE or --redis-url URL" in r.stderr
    # --log wins over a Redis URL from the environment (no Redis is asked)
    r = _run("router-config", "--log", str(INPUT), "--router", "10.0.0.1", "--vendor", "frr",
             env={"STREAMLB_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert r.returncode == 0 and r.stdout == (GOLDEN / "frr.conf").read_text(), r.stderr
    r = _run("router-config", "--log", str(INPUT), "--router", "10.0.0.1", "--vendor", "frr", "--output",
             str(tmp_path / "no" / "such" / "dir" / "x.conf"))
    assert r.returncode == 2 and "x.conf" in r.stderr and "Traceback" not in r.stderr


def test_unreachable_redis_is_exit_1() -> None:
    r = _run("router-config", "--redis-url", "redis://127.0.0.1:1/0", "--cluster", "routercfg-cli-test",
             "--router", "10.0.0.1", "--vendor", "frr")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Redis" in r.stderr and "Traceback" not in r.stderr
