"""Kubernetes I/O: API client, watch producer, status write-back, leases, and the MetalLB import."""
