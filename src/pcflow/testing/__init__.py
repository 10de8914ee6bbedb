"""Test and benchmark helpers (synthetic cubes, a fault-injecting proxy); not product code."""
