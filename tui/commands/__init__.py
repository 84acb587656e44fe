"""The CLI\x27s command groups, one module each."""
