"""Migration from MetalLB: a config dump plus Service statuses into an event log that keeps every assignment.

``streamlb import metallb`` reads what ``kubectl get ipaddresspools,l2advertisements,bgpadvertisements,bgppeers,
communities,bfdprofiles -A -o yaml`` and ``kubectl get services,nodes,namespaces -A -o yaml`` print (YAML or JSON,
``kind: List`` expanded, several files concatenated) and produces:

* the events, in an order chosen so that the fold re-claims every address MetalLB assigned: Namespaces and Nodes
  first (``namespaceSelectors`` and node selectors read them), then the configuration in dependency order
  (Communities and BFD profiles before the objects that name them, pools before advertisements), then
  EndpointSlices, then the Services — those holding addresses first (most addresses first, then by key), pending
  ones last, so a pending Service can never take an address another Service holds (MetalLB's restart rule);
* a report of what streamlb will do differently: the Services whose address the fold would not keep (the check is
  a real fold of the produced events, not a prediction), Services MetalLB left pending that streamlb would serve,
  MetalLB fields and objects streamlb ignores (FRR-only BGPPeer fields, BFD echo, raw FRR config), and the places where
  MetalLB chooses at random and streamlb by a fixed rule.

Nothing here talks to a cluster or to Redis; the caller writes the events where it wants them.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec
import yaml

from events import codec, kube, schema
from reconciler import decisions, fold
from reconciler import state as statemod


class ImportError_(Exception):
    """A source cannot be parsed at all (exit 2): names the source and, when known, the line."""


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str  # "error" (an assignment would change), "warning" (behaviour differs), "info"
    subject: str  # "BGPPeer metallb-system/p1", "Service default/web", "configuration"
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "subject": self.subject, "message": self.message}


@dataclass(slots=True)
class ImportResult:
    events: list[schema.Event] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    services_with_ip: int = 0
    assignments_kept: int = 0
    state: statemod.State | None = None

    @property
    def assignments_changed(self) -> int:
        return self.services_with_ip - self.assignments_kept

    def to_json_obj(self) -> dict[str, Any]:
        sev = Counter(f.severity for f in self.findings)
        return {
            "events": len(self.events),
            "services_with_ip": self.services_with_ip,
            "assignments_kept": self.assignments_kept,
            "assignments_changed": self.assignments_changed,
            "state_hash": decisions.state_hash(self.state) if self.state is not None else None,
            "findings": [f.as_dict() for f in self.findings],
            "summary": {k: sev.get(k, 0) for k in ("error", "warning", "info")},
            "ignored": dict(sorted(self.ignored.items())),
            "rejected": self.rejected,
        }


# --------------------------------------------------------------------------------------------------------------
# What streamlb does not do that MetalLB (in FRR or frr-k8s mode) does. One line per field; the wording is shown
# to users, so it says what happens to their setting.

PEER_FIELDS_IGNORED: dict[str, str] = {
    "vrf": "FRR-only: streamlb's speaker peers from the default VRF; the session is not opened in the VRF",
    "interface": "FRR-only (unnumbered BGP): streamlb's speaker needs peerAddress; this peer gets no session",
    "dynamicASN": "FRR-only: streamlb's speaker needs an explicit peerASN; this peer gets no session",
    "localASN": "FRR-only: the local-as/replace-as rewrite is not applied; myASN is sent",
    "dualStackAddressFamily": "FRR-only: prefixes are sent only over a session of their own address family",
    "disableMP": "deprecated in MetalLB and without effect there too",
}

OBJECTS_IGNORED: dict[str, str] = {
    "FRRConfiguration": "frr-k8s raw configuration is not used by streamlb (its BGP speaker is not FRR)",
    "ServiceL2Status": "MetalLB status object: streamlb reports announcements itself",
    "ServiceBGPStatus": "MetalLB status object: streamlb reports announcements itself",
    "ConfigurationState": "MetalLB status object: streamlb reports configuration validity itself",
}

CONFIGMAPS: dict[str, str] = {
    "bgpextras": "raw FRR configuration appended by MetalLB in FRR mode is ignored by streamlb",
    "metallb-excludel2": "the L2 interface exclusion list is not imported; give the speaker its own exclusions",
}

_KIND_ORDER = {
    "Namespace": 0,
    "Node": 1,
    "Community": 2,
    "BFDProfile": 3,
    "IPAddressPool": 4,
    "BGPPeer": 5,
    "L2Advertisement": 6,
    "BGPAdvertisement": 7,
    "EndpointSlice": 8,
    "Service": 9,
}


# --------------------------------------------------------------------------------------------------------------
# Reading


def parse_documents(name: str, text: str) -> list[tuple[str, Any]]:
    """The objects of one source as ``(where, object)``, ``kind: List`` expanded. Raises :class:`ImportError_`."""
    loader = yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader
    out: list[tuple[str, Any]] = []
    try:
        docs = list(yaml.load_all(io.StringIO(text), Loader=loader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise ImportError_(f"{where}: invalid YAML/JSON: {getattr(exc, 'problem', None) or exc}") from None
    n = 0
    for doc in docs:
        if doc is None:
            continue
        n += 1
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            for i, item in enumerate(doc["items"]):
                out.append((f"{name}: document {n}, items[{i}]", item))
        else:
            out.append((f"{name}: document {n}", doc))
    return out


def _meta(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _subject(kind: str, ns: str, name: str) -> str:
    return f"{kind} {ns}/{name}" if ns else f"{kind} {name}"


def _raw_findings(obj: dict, metallb_namespaces: tuple[str, ...], lb_class: str | None) -> list[Finding]:
    """What the translation drops from this raw object that a MetalLB user may rely on."""
    kind = obj.get("kind")
    api = str(obj.get("apiVersion") or "")
    ns, name = _meta(obj)
    subject = _subject(str(kind), ns, name)
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    found: list[Finding] = []
    group = api.rpartition("/")[0]
    if group in ("metallb.io", "frrk8s.metallb.io") and kind in OBJECTS_IGNORED:
        found.append(Finding("info" if group == "metallb.io" else "warning", subject, OBJECTS_IGNORED[kind]))
        return found
    if group == "metallb.io" and ns not in metallb_namespaces:
        found.append(Finding("warning", subject, f"not in a MetalLB namespace ({', '.join(metallb_namespaces)}): "
                                                 "MetalLB ignores it and so does streamlb"))
        return found
    if kind == "BGPPeer" and group == "metallb.io":
        for fname, why in PEER_FIELDS_IGNORED.items():
            value = spec.get(fname)
            if value not in (None, "", False, 0, [], {}):
                found.append(Finding("warning", subject, f"spec.{fname}={value!r}: {why}"))
        if spec.get("password"):
            found.append(Finding("warning", subject, "spec.password is set: it never enters the event log (only "
                                                     "'a password is set'); give it to the speakers as key "
                                                     f"{name!r} of the Secret streamlb-bgp-passwords"))
        secret = spec.get("passwordSecret")
        if isinstance(secret, dict) and secret.get("name"):
            found.append(Finding("warning", subject, f"passwordSecret {secret.get('name')!r} stays a reference: "
                                                     "the speakers read BGP passwords from files, so copy its "
                                                     f"password to key {name!r} of the Secret "
                                                     "streamlb-bgp-passwords"))
        if api.endswith("/v1beta1"):
            found.append(Finding("info", subject, "BGPPeer v1beta1 is deprecated; imported as v1beta2, as the API "
                                                  "server serves it"))
    elif kind == "BFDProfile" and group == "metallb.io":
        if spec.get("echoMode"):
            found.append(Finding("warning", subject, "spec.echoMode: BFD echo is not supported; the session runs "
                                                     "on control packets alone (reported as echo 'unsupported')"))
    elif kind == "ConfigMap" and api == "v1" and name in CONFIGMAPS and ns in metallb_namespaces:
        found.append(Finding("warning", subject, CONFIGMAPS[name]))
    elif kind == "Service" and api == "v1":
        sspec = spec
        cls = sspec.get("loadBalancerClass")
        if sspec.get("type") == "LoadBalancer" and cls != lb_class:
            which = f"loadBalancerClass {cls!r}" if cls is not None else "no loadBalancerClass"
            mine = f"--lb-class {lb_class!r}" if lb_class is not None else "no --lb-class"
            found.append(Finding("info", subject, f"{which}: not handled by this streamlb ({mine}); its status "
                                                  "is left alone"))
        meta = obj.get("metadata") or {}
        for key in sorted((meta.get("annotations") or {})):
            if key.startswith("metallb.universe.tf/"):
                found.append(Finding("info", subject, f"deprecated annotation {key} is honoured (the "
                                                      "metallb.io/ form wins when both are present)"))
    return found


def _random_choice_findings(pools: list[schema.IPAddressPool]) -> list[Finding]:
    """Where MetalLB picks at random among pools and streamlb picks by name."""
    found: list[Finding] = []
    fallback = sorted(p.name for p in pools if p.auto_assign and p.service_allocation is None)
    if len(fallback) > 1:
        found.append(Finding("info", "configuration", "MetalLB tries the pools without serviceAllocation in random "
                                                      f"order; streamlb tries them by name: {', '.join(fallback)}"))
    by_prio: dict[int, list[str]] = {}
    for p in pools:
        if p.auto_assign and p.service_allocation is not None:
            by_prio.setdefault(p.service_allocation.priority, []).append(p.name)
    for prio in sorted(by_prio):
        names = sorted(by_prio[prio])
        if len(names) > 1:
            found.append(Finding("info", "configuration", f"pools with serviceAllocation priority {prio} are tried "
                                                          "in random order by MetalLB and by name by streamlb: "
                                                          + ", ".join(names)))
    return found


# --------------------------------------------------------------------------------------------------------------
# The import


def _order_key(obj: schema.K8sObject) -> tuple:
    kind = type(obj).__struct_config__.tag
    held = -len(obj.ingress_ips) if isinstance(obj, schema.Service) else 0
    return (_KIND_ORDER[kind], held, obj.namespace, obj.name)


def import_metallb(
    sources: list[tuple[str, str]],
    metallb_namespaces: tuple[str, ...] = ("metallb-system",),
    lb_class: str | None = None,
) -> ImportResult:
    """Translate, order and verify. ``sources`` are ``(name, text)`` pairs. Raises :class:`ImportError_`."""
    result = ImportResult()
    latest: dict[tuple[str, str, str], schema.K8sObject] = {}
    for name, text in sources:
        for where, obj in parse_documents(name, text):
            if isinstance(obj, dict):
                result.findings.extend(_raw_findings(obj, metallb_namespaces, lb_class))
            try:
                translated = kube.translate(obj, metallb_namespaces)
            except kube.TranslateError as exc:
                result.rejected.append({"where": where, "reason": str(exc)})
                continue
            if isinstance(translated, kube.Ignored):
                result.ignored[translated.key] += 1
                continue
            if isinstance(translated, schema.BGPPeer) and translated.api_version == "v1beta1":
                # the API server serves every BGPPeer as v1beta2 (the storage version; v1beta1's fields are a
                # subset), which is what `streamlb watch` will read: import it as such, so the watcher's first
                # re-list finds nothing to append for an unchanged peer
                translated = msgspec.structs.replace(translated, api_version="v1beta2")
            event = schema.K8sUpsert(obj=translated)
            try:
                codec.validate(event)
            except codec.DecodeError as exc:
                result.rejected.append({"where": where, "reason": str(exc)})
                continue
            kind = type(translated).__struct_config__.tag
            latest[(kind, translated.namespace, translated.name)] = translated  # a later dump wins
    objs = sorted(latest.values(), key=_order_key)
    result.events = [schema.K8sUpsert(obj=o) for o in objs]
    result.findings.extend(_random_choice_findings([o for o in objs if isinstance(o, schema.IPAddressPool)]))

    # Verify by folding exactly what will be written.
    st = statemod.new(lb_class)
    for ev in result.events:
        fold.apply(st, ev)
    result.state = st
    if not st.config_valid:
        for e in st.config_errors:
            result.findings.append(Finding("error", "configuration", f"streamlb rejects the configuration: {e}"))
    out = decisions.services(st, with_events=False)
    for obj in objs:
        if not isinstance(obj, schema.Service):
            continue
        key = f"{obj.namespace}/{obj.name}"
        dec = out.get(key)
        if dec is None:
            continue  # not handled (type or class); reported above when it matters
        subject = f"Service {key}"
        if obj.ingress_ips:
            result.services_with_ip += 1
            if list(dec["ingress"]) == list(obj.ingress_ips):
                result.assignments_kept += 1
            else:
                got = ", ".join(dec["ingress"]) or "no address"
                why = f" ({dec['reason']}: {st.services[key].message})" if dec["reason"] else ""
                result.findings.append(Finding(
                    "error", subject,
                    f"MetalLB assigned {', '.join(obj.ingress_ips)}; streamlb would give {got}{why}"))
        elif dec["ingress"]:
            result.findings.append(Finding(
                "warning", subject, f"MetalLB left it pending; streamlb assigns {', '.join(dec['ingress'])} "
                                    f"from pool {dec['pool']}"))
    order = {"error": 0, "warning": 1, "info": 2}
    result.findings.sort(key=lambda f: (order[f.severity], f.subject, f.message))
    return result
