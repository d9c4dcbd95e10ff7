"""The integration fixtures (a mason state root on the session containerd with the session
busybox) for the same-image harness, which builds with mason and buildkitd."""

from tests.integration.conftest import build_env  # noqa: F401
