"""Shared pytest set-up. Session fixtures for real daemons live in tests/fixtures/ and are
registered here as plugins."""

pytest_plugins: list[str] = [
    "tests.fixtures.containerd",
    "tests.fixtures.registry",
    "tests.fixtures.buildkitd",
    "tests.fixtures.foreign",
    "tests.fixtures.debian",
]
