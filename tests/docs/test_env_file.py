"""The packages' env file lists every variable the server reads.

The install test checks the same inside a Debian root, minutes into CI; this
catches a new setting missing from `packaging/stemedb.env` in `make test`.
"""

from __future__ import annotations

import re
from pathlib import Path

from stemedb.config import KNOWN_VARIABLES

ENV_FILE = Path(__file__).resolve().parents[2] / "packaging" / "stemedb.env"


def test_the_env_file_documents_every_variable() -> None:
    listed = set(re.findall(r"^#?(STEMEDB_[A-Z0-9_]+)=", ENV_FILE.read_text(), re.M))
    assert not sorted(KNOWN_VARIABLES - listed), "add them to packaging/stemedb.env"
