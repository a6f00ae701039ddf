"""Leader election with a ``coordination.k8s.io/v1`` Lease (client-go's lease lock, in a few lines).

Rules:

1. Expiry is judged on the *local* clock: a replica notes when it last saw the Lease's ``renewTime`` (or holder)
   change, and considers the Lease free once ``leaseDurationSeconds`` pass on its own monotonic clock without a
   change. Clocks of different nodes are never compared.
2. Every write carries the ``resourceVersion`` it read; a 409 means another replica won the race.
3. The holder stops acting as leader as soon as it has failed to renew for ``renew_deadline`` seconds, which is
   shorter than the lease duration, so a new leader can take over only after the old one stopped appending.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from kubernetes import client

from reconciler.runtime.kube import api as kube_api

logger = logging.getLogger("streamlb.lease")


def _microtime(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = 15,
        renew_deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.renew_deadline = renew_deadline if renew_deadline is not None else lease_seconds * 2 / 3
        self.clock = clock
        self.wall = wall
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self._last_renew: float | None = None  # local time of our last successful acquire/renew

    @property
    def is_leader(self) -> bool:
        return self._last_renew is not None and self.clock() - self._last_renew < self.renew_deadline

    def step(self) -> bool:
        """Try to acquire or renew once. Returns whether this replica leads now. API errors count as failure."""
        try:
            won = self._try()
        except kube_api.ApiError as exc:
            logger.warning("lease %s: %s", self.name, exc)
            won = False
        if won:
            self._last_renew = self.clock()
        elif self._last_renew is not None and not self.is_leader:
            logger.warning("lease %s: lost leadership", self.name)
            self._last_renew = None
        return self.is_leader

    def _spec(self, transitions: int, acquired: str | None) -> dict:
        now = _microtime(self.wall())
        return {"holderIdentity": self.identity, "leaseDurationSeconds": self.lease_seconds,
                "acquireTime": acquired or now, "renewTime": now, "leaseTransitions": transitions}

    def _try(self) -> bool:
        try:
            lease = kube_api.request(self.api, "GET", f"{self.path}/{self.name}", timeout=5.0)
        except kube_api.ApiError as exc:
            if exc.status != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name}, "spec": self._spec(0, None)}
            try:
                kube_api.request(self.api, "POST", self.path, body=body, timeout=5.0)
            except kube_api.ApiError as exc2:
                if exc2.status == 409:
                    return False
                raise
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        seen = (holder, str(spec.get("renewTime") or ""))
        now = self.clock()
        if seen != self._observed:
            self._observed, self._observed_at = seen, now
        duration = int(spec.get("leaseDurationSeconds") or self.lease_seconds)
        mine = holder == self.identity
        if holder and not mine and now - self._observed_at < duration:
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if mine else 1)
        new = dict(lease)
        new["spec"] = self._spec(transitions, spec.get("acquireTime") if mine else None)
        try:
            kube_api.request(self.api, "PUT", f"{self.path}/{self.name}", body=new, timeout=5.0)
        except kube_api.ApiError as exc:
            if exc.status == 409:
                return False
            raise
        if not mine:
            logger.info("lease %s: acquired by %s", self.name, self.identity)
        return True

    def release(self) -> None:
        """Give the Lease up (clean shutdown) so another replica need not wait for expiry."""
        if not self.is_leader:
            return
        self._last_renew = None
        try:
            lease = kube_api.request(self.api, "GET", f"{self.path}/{self.name}", timeout=5.0)
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                kube_api.request(self.api, "PUT", f"{self.path}/{self.name}", body=lease, timeout=5.0)
        except kube_api.ApiError as exc:
            logger.warning("lease %s: release failed: %s", self.name, exc)
