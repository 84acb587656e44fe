"""The console's themes: one palette each, with Lifeboat's own variables for RPO states.

Screens use only theme variables (``$rpo-ok``, ``$rpo-warning``, ``$rpo-breach`` and Textual's
own), never literal colours, so every screen follows the theme, light or dark.
"""

from __future__ import annotations

from textual.theme import Theme

DEFAULT_THEME = "lifeboat-dark"

LIFEBOAT_DARK = Theme(
    name="lifeboat-dark",
    primary="#4EA1D3",
    secondary="#7FB7BE",
    accent="#F2A541",
    warning="#F2C14E",
    error="#E5484D",
    success="#46A758",
    foreground="#E6EDF3",
    background="#0F1720",
    surface="#16212C",
    panel="#1E2C3A",
    dark=True,
    variables={"rpo-ok": "#46A758", "rpo-warning": "#F2C14E", "rpo-breach": "#E5484D"},
)

LIFEBOAT_LIGHT = Theme(
    name="lifeboat-light",
    primary="#1F6FA3",
    secondary="#3E7F86",
    accent="#B86E00",
    warning="#9A6A00",
    error="#B42318",
    success="#1E7A34",
    foreground="#1B2631",
    background="#F7F9FB",
    surface="#EDF1F5",
    panel="#DDE5EC",
    dark=False,
    variables={"rpo-ok": "#1E7A34", "rpo-warning": "#9A6A00", "rpo-breach": "#B42318"},
)

HIGH_CONTRAST = Theme(
    name="high-contrast",
    primary="#00FFFF",
    secondary="#FFFFFF",
    accent="#FFFF00",
    warning="#FFFF00",
    error="#FF5555",
    success="#55FF55",
    foreground="#FFFFFF",
    background="#000000",
    surface="#000000",
    panel="#202020",
    dark=True,
    variables={"rpo-ok": "#55FF55", "rpo-warning": "#FFFF00", "rpo-breach": "#FF5555"},
)

THEMES = (LIFEBOAT_DARK, LIFEBOAT_LIGHT, HIGH_CONTRAST)

# Under any other (built-in) theme the custom variables still resolve.
VARIABLE_DEFAULTS = {"rpo-ok": "green", "rpo-warning": "yellow", "rpo-breach": "red"}
