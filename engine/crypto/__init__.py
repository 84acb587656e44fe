"""Encryption of artifacts at rest: the age v1 format, streamed."""

# Where an age identity may come from besides --identity (kept here, light to import: the
# CLI's help names it before anything loads the crypto).
IDENTITY_VARIABLE = "LIFEBOAT_AGE_IDENTITY"
