"""Long-running processes: the ``streamlb run`` replica, the speaker, and the liveness monitor."""
