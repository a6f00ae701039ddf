"""Fail when the compiled fast path silently fell back to the pure twin (yarl's ``test_quoting_c_loaded``), and
check that the twins expose the same signatures."""

from __future__ import annotations

import importlib
import inspect
import os

import pytest

EXPECT_C = not os.environ.get("FASTPATH_NO_EXTENSIONS")
AREAS = ["l2", "bgp", "bfd"]


@pytest.mark.parametrize("area", AREAS)
def test_selector_uses_the_expected_implementation(area: str) -> None:
    sel = importlib.import_module(f"fastpath.{area}")
    assert sel.IMPLEMENTATION == ("c" if EXPECT_C else "py")
    src = importlib.import_module(f"fastpath._{area}" if EXPECT_C else f"fastpath._{area}_py")
    for name in sel.BUILDERS:
        assert getattr(sel, name) is getattr(src, name), name


@pytest.mark.skipif(not EXPECT_C, reason="pure-twin run: the compiled modules are not in use")
@pytest.mark.parametrize("area", AREAS)
def test_compiled_module_is_an_extension(area: str) -> None:
    mod = importlib.import_module(f"fastpath._{area}")
    assert mod.__file__.endswith(".so"), mod.__file__


@pytest.mark.skipif(not EXPECT_C, reason="pure-twin run: the compiled modules are not in use")
@pytest.mark.parametrize("area", AREAS)
def test_signatures_match(area: str) -> None:
    sel = importlib.import_module(f"fastpath.{area}")
    c = importlib.import_module(f"fastpath._{area}")
    py = importlib.import_module(f"fastpath._{area}_py")
    for name in sel.BUILDERS:
        sc, sp = inspect.signature(getattr(c, name)), inspect.signature(getattr(py, name))
        assert list(sc.parameters) == list(sp.parameters), name
        assert [p.default for p in sc.parameters.values()] == [p.default for p in sp.parameters.values()], name
