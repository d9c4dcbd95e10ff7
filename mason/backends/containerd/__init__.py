"""containerd for the solver: generated API stubs (``_protos``), a typed gRPC client
(``client``), the address / private daemon logic (``daemon``), layer import and diff
(``layers``), and the exec primitive: OCI specs (``spec``), steps as containers and tasks with
shim grouping and background deletes (``exec``), the step's root filesystem mounted by mason
itself (``rootfs``), and step networks — ``none`` / ``host`` / ``default`` on a CNI bridge
(``network``, invoking the plugins through ``cni``) with namespaces prepared ahead of need by a
small pool (``netpool``).

The only package that touches containerd's generated stubs. Imports ``mason.ir`` only.
"""
