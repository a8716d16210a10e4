"""Thin request handlers, one module per resource.

Each declares its Operations (scope, the schemas of what it accepts and
answers, which ``scanner.shapes`` renders), parses the request, calls one
use case from ``scanner.usecases`` and renders what it returns.
"""
