"""Lifeboat's engine: backups, restores and verification over SSH, with no user interface.

It is kept free of Textual so the CLI, the scheduler, the console and the tests all drive the
same code (a test checks that importing it loads no ``textual`` module).
"""

__version__ = "0.1.0"
