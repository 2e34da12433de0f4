"""Helpers shared by the tests (servers they start, flows they drive)."""
