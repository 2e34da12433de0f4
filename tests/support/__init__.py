"""Helpers shared by the tests (and bench/): forms and accounts, chat steps, API calls, ports, waiting.

Test modules import from here, never from each other.
"""
