"""The Textual console: the app, its screens and widgets. It drives the engine and never opens a
socket itself.
"""
