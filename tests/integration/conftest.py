"""Order of the integration suite and the work it starts in the background.

The BGP collision runs go first: for about three minutes they mostly sleep on gobgpd's timers (it dials no sooner
than 5 s after a start and idles 5 s after a dropped session), which leaves the CPU to the suite's one long
CPU-bound job, the build of a fresh install for ``test_install.py`` (``install_env``), started as soon as
collection ends. Every other test keeps its place, so nothing timing-sensitive (BFD, GARP bounds) runs beside the
build.
"""

from __future__ import annotations

import pytest

from tests.integration import install_env

FIRST = ("test_bgp_collision.py",)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: 0 if item.path.name in FIRST else 1)  # a stable sort: the rest keep their order


def pytest_collection_finish(session: pytest.Session) -> None:
    names = {item.path.name for item in session.items}
    if "test_install.py" in names and FIRST[0] in names and not session.config.option.collectonly:
        install_env.start(session.config._tmp_path_factory.mktemp("install"))  # noqa: SLF001 - tmp_path_factory


def pytest_sessionfinish(session: pytest.Session) -> None:
    install_env.wait()
