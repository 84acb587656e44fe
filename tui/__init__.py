"""Lifeboat's user interfaces: the click CLI and (later) the Textual console."""
