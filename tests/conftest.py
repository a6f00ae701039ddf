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
