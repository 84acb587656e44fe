"""Restores: the plain checked path now; decision trees, plans and the validator build on it."""
