"""Shared pytest set-up. Session fixtures for real daemons live in tests/fixtures/ and are
registered here as plugins."""

pytest_plugins: list[str] = [
    "tests.fixtures.containerd",
    "tests.fixtures.registry",
    "tests.fixtures.buildkitd",
    "tests.fixtures.foreign",
    "tests.fixtures.debian",
    "tests.fixtures.deeptree",
]

# The suite runs on a shared, loaded machine: Hypothesis must not turn slowness into failures
# (its per-example deadline and its "input generation is slow" health check are timings, and
# tests never assert a time). Tests that set their own settings inherit these.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("mason", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("mason")
