"""The reconciler's state: the objects seen so far, the configuration in force and the decisions.

Pure means deterministic and effect-free, not immutable (design.md §1): :class:`State` keeps mutable dicts as
indexes so one event costs O(log n), and every canonical form (hash, snapshot, output) is produced sorted.

Rules:

1. Nothing here decides anything by dict or set iteration order; iteration that matters goes through ``sorted``.
2. The state holds no clock value, no randomness and nothing from the environment. Settings that change decisions
   (the load-balancer class) are fields, fixed when the state is created, so two replicas configured alike agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from events import schema
from reconciler import config as configmod

ServiceKey = str  # "namespace/name"
ObjKey = tuple[str, str]  # (namespace, name)


@dataclass(slots=True)
class ServiceDecision:
    """What streamlb decided for one handled Service."""

    ingress: list[str] = field(default_factory=list)  # in status.loadBalancer.ingress order
    pool: str | None = None
    reason: str | None = None
    message: str = ""  # human detail of the reason (not part of the hash)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message), newest last

    def emit(self, type_: str, reason: str, message: str) -> None:
        ev = (type_, reason, message)
        if not self.events or self.events[-1] != ev:
            self.events.append(ev)


@dataclass(slots=True)
class State:
    lb_class: str | None = None  # None: handle only Services without spec.loadBalancerClass
    objects: dict[str, dict[ObjKey, schema.K8sObject]] = field(
        default_factory=lambda: {k: {} for k in schema.OBJECT_KINDS}
    )
    speakers_down: set[str] = field(default_factory=set)
    config: configmod.Config | None = None  # the last valid configuration (in force)
    config_objects: tuple[schema.K8sObject, ...] = ()  # the objects that configuration was built from
    config_valid: bool = True
    config_errors: list[str] = field(default_factory=list)
    config_index: Any = None  # reconciler.fold.ConfigIndex: validation kept per Node; rebuilt on demand, never hashed
    services: dict[ServiceKey, ServiceDecision] = field(default_factory=dict)
    # allocation indexes (owned by reconciler.allocate)
    assigned: dict[ServiceKey, tuple[str, tuple[tuple[int, int], ...]]] = field(default_factory=dict)
    ip_users: dict[tuple[int, int], list[ServiceKey]] = field(default_factory=dict)
    pending: set[ServiceKey] = field(default_factory=set)
    alloc: Any = None  # reconciler.allocate.Index: free-address and waiter indexes, rebuilt on demand, never hashed
    # EndpointSlice index: (namespace, service name) -> slice names
    slices_by_service: dict[ObjKey, set[str]] = field(default_factory=dict)
    # announcement planning (owned by reconciler.planning; built lazily, None until first asked for)
    plan: object | None = None
    # change feed for the runtime (streamlb run publishes what changed): keys of Services whose decision was
    # recomputed or dropped, collected only while a consumer set it to a set (None: nobody listens); never hashed
    decided: set[ServiceKey] | None = field(default=None, compare=False)

    def service(self, key: ServiceKey) -> schema.Service | None:
        ns, _, name = key.partition("/")
        obj = self.objects["Service"].get((ns, name))
        return obj if isinstance(obj, schema.Service) else None


def service_key(obj: schema.Service) -> ServiceKey:
    return f"{obj.namespace}/{obj.name}"


def new(lb_class: str | None = None) -> State:
    return State(lb_class=lb_class)
