"""Backends: the solver on containerd, sources, exporters and dumpers. Import ``mason.ir`` and
each other."""
