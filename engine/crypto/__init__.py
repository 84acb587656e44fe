"""Encryption of artifacts at rest: the age v1 format, streamed."""
