"""Validation checklists: items as data, automatic checks, runs with sign-off, reports."""
