"""Remote build cache (issue 18): export the solver's cache records to a registry, a local OCI
layout or the image's own config, and import them into a build on another machine.

* :mod:`.spec` — ``--cache-to`` / ``--cache-from`` values in buildx's syntax.
* :mod:`.format` — the cache config (BuildKit's ``application/vnd.buildkit.cacheconfig.v0``
  shape: layers linked by parent, records linked by inputs) and the manifest / index around it.

Imports ``mason.ir`` and ``mason.backends.oci``."""
