"""Exporters: a build result (the chain of layer sources of its final state, its image config
and its final snapshot) turned into outputs — mason's image store in containerd, OCI and
Docker archives, a local directory or tar of the root filesystem, a registry push — plus the
image store's own operations (list, remove, load an archive).

* ``layer`` — layer sources (base layers passed through, snapshot diffs computed lazily) and
  ``resolve_layer``; ``difftar`` writes reproducible layer tars (``SOURCE_DATE_EPOCH``).
* ``image`` — ``export_image`` (config, manifest, GC labels, image records) and the store.
* ``oci_tar``, ``docker_tar``, ``local``, ``tar``, ``registry`` — one output type each.
* ``load`` — ``mason load``: OCI and Docker archives into the store.
* ``outputs`` — ``--output`` parsing and up-front checks; ``export`` — running them.

May import ``mason.ir``, ``mason.backends.containerd``, ``mason.backends.oci`` and
``mason.backends.sources`` (the registry client and the ``Layer`` type).
"""
