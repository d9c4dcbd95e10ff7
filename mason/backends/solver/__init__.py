"""The solver: executes an LLB graph on containerd snapshots (scheduling, cache keys, cache
database, events) and, in ``fileop``, FileOps on mounted snapshot directories with path
resolution that never leaves the snapshot root (``fsutil``, ``users``). Imports ``mason.ir`` and
the other backends."""
