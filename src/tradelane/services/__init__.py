"""Use cases: one per module, explicit dependencies (a connection, ``now``, collaborators)."""
