"""The fold's short cuts give the answers of the straightforward code they skip.

Each law compares a fast path with the general code it bypasses (kept in the module, or written out here as the
reference): Go quoting, annotation lookup, cluster-IP families, the EndpointSlice index, and ``fold.apply``'s
dispatch with and without an announcement plan built.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from events import schema
from reconciler import allocate, decisions, fold, net, planning, snapshot, state as statemod
from reconciler.reasons import Reason
from tests import strategies as S


def _go_quote_reference(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in allocate._GO_ESCAPES:
            out.append(allocate._GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


@given(st.text() | st.sampled_from(["", "a\"b", "a\\b", "x\ty", "\x7f", "é", "10.0.0.1", "2001:db8::1"]))
def test_go_quote_equals_the_escaping_loop(text: str) -> None:
    assert allocate.go_quote(text) == _go_quote_reference(text)


@given(st.lists(st.integers(0, 2**32 - 1), max_size=3) | st.lists(st.integers(0, 2**128 - 1), max_size=3))
def test_address_list_text_equals_quoting_each_address(values: list[int]) -> None:
    fam = net.V6 if any(v >= 2**32 for v in values) else net.V4
    addrs = [(fam, v) for v in values]
    assert allocate.go_list(addrs) == "[" + " ".join(_go_quote_reference(net.to_text(*a)) for a in addrs) + "]"


def _annotation_reference(svc: schema.Service, name: str) -> str | None:
    for prefix in allocate.ANNOTATION_PREFIXES:
        for k, v in svc.annotations:
            if k == prefix + name:
                return v
    return None


_ANN_KEYS = st.sampled_from([p + n for p in allocate.ANNOTATION_PREFIXES + ("other.io/",)
                             for n in ("address-pool", "allow-shared-ip", "loadBalancerIPs")])


@given(st.lists(st.tuples(_ANN_KEYS, st.sampled_from(["a", "b", ""])), max_size=6),
       st.sampled_from(["address-pool", "allow-shared-ip", "loadBalancerIPs"]))
def test_annotation_lookup_equals_two_passes(pairs: list[tuple[str, str]], name: str) -> None:
    svc = schema.Service(namespace="ns", name="s", annotations=tuple(pairs))
    assert allocate.annotation(svc, name) == _annotation_reference(svc, name)


_IP_TEXTS = st.one_of(
    S.ips,
    st.sampled_from(["10.0.0.1", "fd00::1", "10.0.0.01", "256.1.1.1", "1.2.3", "fe80::1%eth0", "", "::ffff:1.2.3.4",
                     " 10.0.0.1", "x"]),
)


def _families_reference(ips: tuple[str, ...]) -> tuple[int, ...] | str:
    if not ips:
        return ()
    err = allocate.family_error(ips)
    if err is not None:
        return err
    return tuple(sorted(net.parse_ip(ip)[0] for ip in ips))


@given(st.lists(_IP_TEXTS, max_size=3).map(tuple))
def test_cluster_families_equal_the_error_checked_parse(ips: tuple[str, ...]) -> None:
    svc = schema.Service(namespace="ns", name="s", cluster_ips=ips)
    want = _families_reference(ips)
    try:
        got: tuple[int, ...] | str = allocate.cluster_families(svc)
    except allocate.RequestError as exc:
        assert exc.reason is Reason.NO_CLUSTER_IP
        got = str(exc)
    assert got == want


@given(_IP_TEXTS)
def test_family_of_agrees_with_parse_ip(text: str) -> None:
    try:
        want: int | None = net.parse_ip(text)[0]
    except ValueError:
        want = None
    assert net.family_of(text) == want


_SLICE_NAMES = ["a", "b", "c"]
_SERVICES = ["s1", "s2", ""]
_slice_events = st.one_of(
    st.builds(
        lambda ns, name, svc, n: schema.K8sUpsert(obj=schema.EndpointSlice(
            namespace=ns, name=name, service_name=svc,
            endpoints=tuple(schema.Endpoint(addresses=(f"10.1.0.{i}",), node_name="n1") for i in range(n)))),
        st.sampled_from(["x", "y"]), st.sampled_from(_SLICE_NAMES), st.sampled_from(_SERVICES), st.integers(0, 2),
    ),
    st.builds(
        lambda ns, name: schema.K8sDelete(ref=schema.ObjectRef(kind="EndpointSlice", namespace=ns, name=name)),
        st.sampled_from(["x", "y"]), st.sampled_from(_SLICE_NAMES),
    ),
)


@given(st.lists(_slice_events, max_size=30))
def test_slice_index_equals_the_one_rebuilt_from_the_objects(events: list[schema.Event]) -> None:
    state = statemod.new()
    for e in events:
        fold.apply(state, e)
        rebuilt: dict[tuple[str, str], set[str]] = {}
        for (ns, name), obj in state.objects["EndpointSlice"].items():
            rebuilt.setdefault((ns, obj.service_name), set()).add(name)  # type: ignore[attr-defined]
        assert state.slices_by_service == rebuilt


@settings(max_examples=40)
@given(st.lists(S.cluster_events, min_size=1, max_size=30))
def test_apply_with_a_plan_built_decides_as_without(events: list[schema.Event]) -> None:
    """The planning hooks are skipped while no plan exists: a fold that built its plan first decides the same."""
    plain = statemod.new()
    planned = statemod.new()
    planning.ensure(planned)
    for e in events:
        fold.apply(plain, e)
        fold.apply(planned, e)
    assert decisions.state_hash(plain) == decisions.state_hash(planned)
    assert snapshot.dump(plain) == snapshot.dump(planned)
