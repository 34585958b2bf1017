"""Python client for the StemeDB HTTP API (standard library HTTP, signs with your key).

    from stemedb.client import Client, ApiError

    client = Client("http://127.0.0.1:18180", key_file="~/.config/stemedb/key")
    client.assert_("drugs/semaglutide", "gastroparesis_risk", "warning", 0.9,
                   source="pubmed://38012345")
    client.skeptic("drugs/semaglutide", "gastroparesis_risk")["status"]

See docs/api.md for every method next to its endpoint.
"""

from __future__ import annotations

from stemedb.client.api import Client
from stemedb.client.base import DEFAULT_URL
from stemedb.client.errors import ApiError, ConnectionFailed

__all__ = ["DEFAULT_URL", "ApiError", "Client", "ConnectionFailed"]
