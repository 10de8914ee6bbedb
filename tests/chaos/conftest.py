"""Chaos tests: faults injected into real runs against the session sandbox (tests/conftest.py)."""
