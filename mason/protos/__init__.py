"""Stubs for other projects' protobuf APIs, generated from the ``.proto`` files Debian packages
(at first use, never committed): :mod:`mason.protos.buildkit` (BuildKit's control, session and
fsutil protos). containerd's live with its client (:mod:`mason.backends.containerd._protos`);
all share :mod:`mason.ir.protogen`."""
