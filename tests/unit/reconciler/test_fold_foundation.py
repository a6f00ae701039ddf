"""The fold's foundation laws: replay determinism, snapshot + tail == full replay, prefix/suffix composition,
invalid configuration keeps the previous one in force."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from benchmarks import data
from events import logfile, schema
from reconciler import decisions, fold, snapshot, state as statemod
from tests import strategies as S

ROOT = Path(__file__).resolve().parents[3]


def _pool(name: str, *addresses: str, **kw) -> schema.K8sUpsert:
    return schema.K8sUpsert(
        obj=schema.IPAddressPool(namespace="metallb-system", name=name, addresses=tuple(addresses), **kw)
    )


def _svc(name: str, ns: str = "default", ips: tuple[str, ...] = ("10.96.0.1",), **kw) -> schema.K8sUpsert:
    return schema.K8sUpsert(obj=schema.Service(namespace=ns, name=name, type="LoadBalancer", cluster_ips=ips, **kw))


def _del(name: str, ns: str = "default") -> schema.K8sDelete:
    return schema.K8sDelete(ref=schema.ObjectRef(kind="Service", namespace=ns, name=name))


def test_services_without_configuration_are_listed_with_a_reason() -> None:
    st_ = fold.fold([_svc("a")], statemod.new())
    out = decisions.services(st_)
    assert out["default/a"]["ingress"] == [] and out["default/a"]["reason"] == "noConfiguration"


def test_invalid_configuration_keeps_the_previous_one() -> None:
    st_ = fold.fold([_pool("p", "192.168.1.0/30"), _svc("a")], statemod.new())
    assert st_.services["default/a"].ingress == ["192.168.1.0"]
    fold.apply(st_, _pool("q", "192.168.1.2/31"))  # overlaps p
    cfg = decisions.config(st_)
    assert cfg["valid"] is False
    assert any("overlaps" in e and "IPAddressPool metallb-system/q" in e for e in cfg["errors"])
    fold.apply(st_, _svc("b"))
    assert st_.services["default/a"].ingress == ["192.168.1.0"]
    assert st_.services["default/b"].ingress == ["192.168.1.1"]  # allocated from the configuration in force


def test_bad_cidr_is_a_configuration_error_naming_the_field() -> None:
    st_ = fold.fold([_pool("p", "10.0.0.0/33")], statemod.new())
    assert decisions.config(st_) == {
        "valid": False,
        "errors": ["IPAddressPool metallb-system/p: spec.addresses[0]: invalid CIDR '10.0.0.0/33'"],
    }


def test_deletion_frees_an_address_for_a_pending_service() -> None:
    st_ = fold.fold([_pool("p", "192.168.1.7/32"), _svc("a"), _svc("b")], statemod.new())
    assert st_.services["default/b"].reason == "noAvailableIPs"
    fold.apply(st_, _del("a"))
    assert st_.services["default/b"].ingress == ["192.168.1.7"]
    assert [e[1] for e in st_.services["default/b"].events] == ["AllocationFailed", "IPAllocated"]


def test_status_ingress_is_restored_and_sticky() -> None:
    st_ = fold.fold(
        [_svc("a", ingress_ips=("192.168.1.3",)), _svc("b"), _pool("p", "192.168.1.0/29")], statemod.new()
    )
    assert st_.services["default/a"].ingress == ["192.168.1.3"]
    assert st_.services["default/b"].ingress == ["192.168.1.0"]
    fold.apply(st_, _svc("c"))
    fold.apply(st_, _del("b"))
    assert st_.services["default/a"].ingress == ["192.168.1.3"]


def _log(n: int, seed: int) -> list[schema.Event]:
    return data.make_event_log(n, n_services=60, n_nodes=5, n_pools=3, seed=seed)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_snapshot_plus_tail_equals_full_replay(seed: int) -> None:
    events = _log(600, seed)
    full = fold.fold(events, statemod.new())
    for cut in (0, 37, 300, 599):
        head = fold.fold(events[:cut], statemod.new())
        restored = snapshot.load(snapshot.dump(head))
        assert snapshot.dump(restored) == snapshot.dump(head)
        resumed = fold.fold(events[cut:], restored)
        assert decisions.state_hash(resumed) == decisions.state_hash(full)
        assert snapshot.dump(resumed) == snapshot.dump(full)


@settings(max_examples=40)
@given(st.lists(S.events, max_size=25), st.lists(S.events, max_size=25))
def test_fold_composes_and_never_crashes_on_valid_events(a: list, b: list) -> None:
    whole = fold.fold(a + b, statemod.new())
    parts = fold.fold(b, fold.fold(a, statemod.new()))
    assert snapshot.dump(whole) == snapshot.dump(parts)
    assert decisions.state_hash(whole) == decisions.state_hash(parts)


def test_replay_is_byte_identical_across_hash_seeds(tmp_path: Path) -> None:
    path = tmp_path / "gen.evlog"
    path.write_bytes(logfile.encode_file(_log(1500, 7)))
    outs = []
    for seed in ("0", "12345", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(
            [sys.executable, "-m", "reconciler", "replay", str(path), "--output", "json"],
            capture_output=True, env=env, cwd=ROOT, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        outs.append(proc.stdout)
    assert outs[0] == outs[1] == outs[2]
    assert b'"state_hash"' in outs[0] and len(outs[0]) > 1000
