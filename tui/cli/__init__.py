"""The ``lifeboat`` command line (click): one module per command group. It never imports Textual;
the console is started through ``tui.console.start`` only when asked for."""
