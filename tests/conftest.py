"""Shared fixtures: the real services, one per session; everything else per test."""

pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.clickhouse",
    "tests.fixtures.triton",
    "tests.fixtures.processes",
]
