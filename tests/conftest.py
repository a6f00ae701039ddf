"""Suite-wide settings: hypothesis profiles, markers, the ``--update-golden`` option."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile("long", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite golden files from current output")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


class _Rand(random.Random):
    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.seed_value = seed

    def __repr__(self) -> str:
        return f"Rand(seed={self.seed_value})"


@pytest.fixture
def rand() -> _Rand:
    """A seeded RNG whose repr shows the seed (set STREAMLB_TEST_SEED to replay a failure)."""
    return _Rand(int(os.environ.get("STREAMLB_TEST_SEED", "42")))


# ./scripts/test sets STREAMLB_FORBID_SKIPS=1 so that a suite cannot go green by skipping: a test skipped for
# any reason other than those listed here (legitimate by construction) fails instead.
_ALLOWED_SKIPS = ("pure-twin run", "kubectl is not installed")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ARG001
    outcome = yield
    rep = outcome.get_result()
    if os.environ.get("STREAMLB_FORBID_SKIPS") != "1" or not rep.skipped or hasattr(rep, "wasxfail"):
        return
    reason = str(rep.longrepr[2]) if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
    if any(a in reason for a in _ALLOWED_SKIPS):
        return
    rep.outcome = "failed"
    rep.longrepr = f"skipped under STREAMLB_FORBID_SKIPS=1 (./scripts/test): {reason}"


# --- the host's own network is not ours to touch ----------------------------------------------------------------
# Integration tests build namespaces, veths and bridges as root. A slip (a command run in the root namespace
# instead of a test namespace, a device moved the wrong way) can strip this machine's own addresses and routes,
# and then everything that needs the network (pip, apt) fails far from the cause. After every integration test
# the root namespace's global addresses and default routes are compared with how they were at the start; any
# difference fails that test by name and is put back.


def _root_net() -> tuple[frozenset, frozenset] | None:
    import json as _json
    import shutil as _shutil
    import subprocess as _sp

    if os.geteuid() != 0 or _shutil.which("ip") is None:
        return None
    try:
        addrs = _json.loads(_sp.run(["ip", "-j", "addr", "show"], capture_output=True, text=True, timeout=10).stdout)
        routes = []
        for fam in ("-4", "-6"):
            routes += _json.loads(
                _sp.run(["ip", "-j", fam, "route", "show", "default"], capture_output=True, text=True,
                        timeout=10).stdout or "[]"
            )
    except (OSError, ValueError, _sp.SubprocessError):
        return None
    a = frozenset(
        (i["ifname"], f"{x['local']}/{x['prefixlen']}")
        for i in addrs for x in i.get("addr_info", []) if x.get("scope") == "global"
    )
    r = frozenset((x.get("dst", "default"), x.get("gateway", ""), x.get("dev", "")) for x in routes)
    return a, r


def _restore_root_net(before: tuple[frozenset, frozenset]) -> None:
    import subprocess as _sp

    addrs, routes = before
    for ifname, cidr in sorted(addrs):
        _sp.run(["ip", "addr", "replace", cidr, "dev", ifname], capture_output=True, timeout=10)
    for _dst, gw, dev in sorted(routes):
        cmd = ["ip", "-6" if ":" in gw else "-4", "route", "replace", "default"]
        cmd += (["via", gw] if gw else []) + (["dev", dev] if dev else [])
        _sp.run(cmd, capture_output=True, timeout=10)


_ROOT_NET: list = []


@pytest.fixture(autouse=True)
def _root_network_untouched(request: pytest.FixtureRequest):
    if request.node.get_closest_marker("integration") is None:
        yield
        return
    if not _ROOT_NET:
        _ROOT_NET.append(_root_net())
    before = _ROOT_NET[0]
    yield
    if before is None:
        return
    after = _root_net()
    if after is not None and after != before:
        lost = sorted((before[0] - after[0]) | (before[1] - after[1]))
        gained = sorted((after[0] - before[0]) | (after[1] - before[1]))
        _restore_root_net(before)
        pytest.fail(f"this test changed the host's own network (root namespace): lost {lost}, gained {gained}; "
                    "restored", pytrace=False)
