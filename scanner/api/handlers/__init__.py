"""Thin request handlers, one module per resource; each declares its Operations and shapes."""
