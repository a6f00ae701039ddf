"""Fixtures for the fast-path tests: ``l2impl`` / ``bgpimpl`` / ``bfdimpl`` run a test against each twin.

With ``FASTPATH_NO_EXTENSIONS`` unset the compiled modules must import (an import failure is an error, not a
skip); with it set only the pure twins are exercised, as a pure install would have them.
"""

from __future__ import annotations

import importlib
import os

import pytest

NO_EXTENSIONS = bool(os.environ.get("FASTPATH_NO_EXTENSIONS"))
IMPLS = ["py"] if NO_EXTENSIONS else ["py", "c"]


def _load(area: str, which: str):
    return importlib.import_module(f"fastpath._{area}_py" if which == "py" else f"fastpath._{area}")


@pytest.fixture(params=IMPLS)
def l2impl(request: pytest.FixtureRequest):
    return _load("l2", request.param)


@pytest.fixture(params=IMPLS)
def bgpimpl(request: pytest.FixtureRequest):
    return _load("bgp", request.param)


@pytest.fixture(params=IMPLS)
def bfdimpl(request: pytest.FixtureRequest):
    return _load("bfd", request.param)
