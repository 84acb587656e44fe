"""The on-disk repository, the source of truth: backups and their manifests, atomic writes, locks,
the audit log, verify, retention, and what killed writers leave behind.
"""
