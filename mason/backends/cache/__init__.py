"""Remote build cache (issue 18): export the solver's cache records to a registry, a local OCI
layout or the image's own config, and import them — lazily — into a build on another machine.

* :mod:`.spec` — ``--cache-to`` / ``--cache-from`` values in buildx's syntax.
* :mod:`.format` — the cache config (BuildKit's ``application/vnd.buildkit.cacheconfig.v0``
  shape: layers linked by parent, records linked by inputs) and the manifest / index around it.
* :mod:`.sources` — where an imported cache's manifest, config and blobs come from (a registry
  repository, an OCI layout directory, an image carrying an inline cache).
* :mod:`.importer` — :class:`~.importer.RemoteCache`: the solver's lookup of cache keys in the
  imported records, and materialization of a hit (blobs fetched, layers unpacked) only when a
  step or an exporter needs its files.
* :mod:`.exporter` — turning a finished solve into records and writing them.
* :mod:`.api` — what the driver calls with parsed specs: :func:`~.api.import_caches` before
  the solve, :func:`~.api.export_caches` after it, :func:`~.api.inline_hook` for the image.

Imports ``mason.ir`` and the other backends (sources' registry client, exporters' layers)."""
