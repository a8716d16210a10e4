"""The pure domain core: origins, policies, browser rules, checks.

Standard library only (and ``scanner.errors``, itself stdlib-only): no network,
no database, no clock, no randomness. Time and random tokens are parameters.
``tests/core/test_purity.py`` enforces it.
"""
