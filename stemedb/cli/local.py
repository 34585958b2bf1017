"""What the commands that open the database file themselves share (backup, archive,
verify, reindex and migrate).

They run next to, or instead of, a server on the same machine, so they take the
file from STEMEDB_DB_DIR like the server does; `--db` points one run elsewhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DB_HELP = "database file, or its directory (default: STEMEDB_DB_DIR/stemedb.db)"


def database_file(value: str) -> Path:
    """A directory means the `stemedb.db` in it, as `import --db` and STEMEDB_DB_DIR do
    (given a directory, SQLite itself answered 'disk I/O error': a false alarm)."""
    path = Path(value)
    return path / "stemedb.db" if path.is_dir() else path


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """`--db FILE`: the database file instead of STEMEDB_DB_DIR/stemedb.db."""
    parser.add_argument("--db", type=database_file, help=DB_HELP)
