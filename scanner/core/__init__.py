"""The pure domain core: every rule of cors-scanner, as functions over values.

Where things live: what a browser allows (``browser``, ``headers``,
``origin``), what an endpoint, its method and tags may be (``endpoints``),
what a policy layer may say and how layers combine (``policy``,
``policy_layers``), an import's rules (``import_rows``), which origins and
probes to send (``variants``, ``plan``), the checks and their catalogue
(``checks``, ``catalogue``, ``findings``, ``severity``), a finding's
lifecycle and a run's diff (``lifecycle``, ``diff``), the one timestamp
format (``timestamps``). Use cases are ``scanner.usecases``, queries
``scanner.db``, renderers ``scanner.shapes`` and ``scanner.reports``.

Standard library only (and ``scanner.errors``, itself stdlib-only): no network,
no database, no clock, no randomness. Time, random tokens and the UTS #46
host mapping are parameters. ``tests/core/test_purity.py`` and
``tests/test_layers.py`` enforce it.
"""
