"""`python -m stemedb.replication`: Litestream in the foreground, for stemedb-litestream.service.

Reads the same STEMEDB_* environment as the server, writes the same litestream.yml
and then *becomes* Litestream (exec), so systemd supervises the real process.
"""

from __future__ import annotations

import os
import sys

from stemedb.config import ConfigError, load_settings
from stemedb.replication import ReplicationError, config_path, enabled, litestream


def main() -> int:
    try:
        settings = load_settings()
        if not enabled(settings):
            print(
                "stemedb-litestream: set STEMEDB_REPLICA_URL or STEMEDB_LITESTREAM_CONFIG in "
                f"/etc/stemedb/stemedb.env; see {litestream.RUNBOOK}",
                file=sys.stderr,
            )
            return 2
        if settings.replication_process != "external":
            print(
                "stemedb-litestream: STEMEDB_REPLICATION_PROCESS must be `external` when this "
                "unit runs Litestream (else stemedb-api starts a second one); see "
                f"{litestream.RUNBOOK}",
                file=sys.stderr,
            )
            return 2
        config, _ = config_path(settings)
        exe = litestream.binary()
    except (ConfigError, ReplicationError, OSError) as exc:
        print(f"stemedb-litestream: {exc}; see {litestream.RUNBOOK}", file=sys.stderr)
        return 2
    os.execv(exe, [str(exe), "replicate", "-config", str(config), "-no-expand-env"])


if __name__ == "__main__":
    sys.exit(main())
