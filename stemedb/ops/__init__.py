"""Operations: backup, journal archiving, restore and the `doctor` diagnosis.

These work on files (the database, backup folders, archive segments), not on
a running server's connections, so the same code serves the CLI, the systemd
timers and `POST /v1/admin/backup`.
"""
