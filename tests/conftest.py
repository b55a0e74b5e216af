"""Shared pytest wiring. Real parts only: fixtures start the embedded broker and store on
free loopback ports when a test asks for them, and stop them afterwards."""

pytest_plugins = [
    "tests.fixtures.broker",
    "tests.fixtures.store",
    "tests.fixtures.fake_openai",
    "tests.xdist_order",
]
