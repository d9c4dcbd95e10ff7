"""Sources: where build inputs come from (``docker-image://``, ``oci-layout://``, ``local://``,
``http(s)://``, ``git://``).

* ``registry`` — the OCI distribution client (:class:`~mason.backends.sources.registry.RegistryClient`:
  resolve, pull, push) and :class:`~mason.backends.sources.registry.RegistryResolver`, the
  registry-backed image-metadata resolver; ``registry_push`` holds the push half.
* ``transport`` — connection pools, plain HTTP for loopback and named insecure registries,
  the Basic / Bearer-token handshake.
* ``auth`` — credentials from Docker's ``config.json`` and ``WWW-Authenticate`` parsing.

Import ``mason.ir`` and ``mason.backends`` only. This ``__init__`` imports nothing, so that
loading one source does not load the others' dependencies (httpx for the registry).
"""
