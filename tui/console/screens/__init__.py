"""One Screen per area of the console, with its layout in a .tcss file beside it."""
