"""Built-in validation checklists (``*.toml``); see engine.checklist.model."""
