"""The use cases: the one place where something a user asks for happens.

Where things live, in cors-scanner:

- a **use case** (start or cancel a run, triage a finding, change the
  inventory, a policy, a hook, a schedule or a token) is a function here, in
  the module named for what it owns: ``runs``, ``triage``, ``inventory``,
  ``policies``, ``hooks``, ``schedules``, ``tokens``. It validates, does the
  change in one transaction and audits it there, once. Reads for every user
  interface (list and show runs, findings, endpoints with their effective
  policy, regressions, deliveries) are here too, so a new front end writes
  no query of its own;
- a **domain rule** (what a browser allows, what a URL, a method, a tag or a
  policy layer may be, how layers combine, a finding's lifecycle) is in
  ``scanner.core``: pure functions over values;
- a **query** is in ``scanner.db``: storage only, rows in and records out;
- a **renderer**: the stable JSON of stored objects is ``scanner.shapes``
  (shared by the API and the CLI); reports of a run (JSON, SARIF, JUnit,
  CSV, metrics) are ``scanner.reports``; alert bodies are ``scanner.alerts``.

The drivers stay thin: an API handler (``scanner.api.handlers``) or a
command (``scanner.cli``) parses its input, calls one use case and renders
the result; the scheduler and the workers plan and run work through the
same ``scanner.db.work`` planning. Every use case takes a
:class:`~scanner.usecases.context.Context` (database, settings, clock) and,
when it changes something, the ``actor`` recorded in the audit log (a
token's name, or ``cli``).
"""

from __future__ import annotations

from scanner.usecases.context import Context

__all__ = ["Context"]
