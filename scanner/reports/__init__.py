"""Renderings of scan results for machines and people (JSON, tables, SARIF, JUnit)."""
