"""The reconciler: a deterministic fold of the event log into decisions (functional core).

Import modules, not names: ``from reconciler import fold`` then ``fold.apply(state, event)``.
``reconciler.runtime`` is the imperative shell (CLI, daemons, I/O); nothing else in this package does I/O.
"""
