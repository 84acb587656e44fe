"""Textual themes for the Lifeboat console (filled in by the console work)."""
