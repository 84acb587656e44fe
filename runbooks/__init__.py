"""Built-in runbooks as data: restore decision trees (``*.toml``); see engine.restore.tree."""
