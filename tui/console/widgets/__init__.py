"""Reusable console widgets; each keeps its own DEFAULT_CSS."""
