"""containerd for the solver: generated API stubs (``_protos``), a typed gRPC client
(``client``), the address / private daemon logic (``daemon``), layer import and diff
(``layers``), and the exec primitive (``spec``, ``exec``).

The only package that touches containerd's generated stubs. Imports ``mason.ir`` only.
"""
