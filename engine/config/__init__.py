"""Lifeboat's configuration: one TOML file (``load``), validated into frozen pydantic models
(``model``, ``sources``, ``schedules``, ``types``), every mistake worded by ``messages``.
"""
