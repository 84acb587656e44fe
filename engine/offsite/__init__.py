"""Off-host copies: remotes (S3-compatible buckets, SFTP directories) holding the repository's
layout, ``copy`` to send backups there and ``fetch`` to bring one back."""
