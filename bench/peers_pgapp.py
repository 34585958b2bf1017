"""The "just use Postgres" peer: a minimal Falcon-on-waitress app over psycopg.

What a user would write in an afternoon: one connection per waitress thread,
one transaction per request, the rows inserted as plain rows, and the
"latest value" read as one indexed SQL query. Run by the bench in its own
venv (bench/.cache/venv-bench, the `bench` extra), never imported by StemeDB:

    PEERS_PG_DSN=... PEERS_PORT=... PEERS_THREADS=32 python -m bench.peers_pgapp
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import falcon
import psycopg
import waitress

DSN = os.environ.get("PEERS_PG_DSN", "")
COLUMNS = (
    "subject",
    "predicate",
    "object",
    "confidence",
    "source_class",
    "source",
    "timestamp",
    "agent_id",
    "signature",
)
INSERT = f"INSERT INTO claims ({', '.join(COLUMNS)}) VALUES ({', '.join('%s' for _ in COLUMNS)})"
LATEST = (
    "SELECT object, timestamp FROM claims WHERE subject = %s AND predicate = %s"
    " ORDER BY timestamp DESC LIMIT 1"
)
_local = threading.local()


def connection() -> Any:
    """This thread's connection (waitress threads are long-lived)."""
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(DSN, autocommit=True)
        _local.conn = conn
    return conn


class Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class Insert:
    """`{"row": {...}}` or `{"rows": [...]}`: one transaction per request."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json.loads(req.bounded_stream.read())
        rows = body["rows"] if "rows" in body else [body["row"]]
        params = [tuple(r.get(c) for c in COLUMNS) for r in rows]
        conn = connection()
        with conn.transaction(), conn.cursor() as cur:
            if len(params) == 1:
                cur.execute(INSERT, params[0])
            else:
                cur.executemany(INSERT, params)
        resp.status = falcon.HTTP_201
        resp.media = {"ok": True, "inserted": len(params)}


class Latest:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        subject = req.get_param("subject", required=True)
        predicate = req.get_param("predicate", required=True)
        with connection().cursor() as cur:
            cur.execute(LATEST, (subject, predicate))
            found = cur.fetchone()
        if found is None:
            raise falcon.HTTPNotFound()
        resp.media = {"object": found[0], "timestamp": found[1]}


def app() -> falcon.App:
    application = falcon.App()
    application.add_route("/health", Health())
    application.add_route("/claims/insert", Insert())
    application.add_route("/latest", Latest())
    return application


if __name__ == "__main__":
    waitress.serve(
        app(),
        host="127.0.0.1",
        port=int(os.environ["PEERS_PORT"]),
        threads=int(os.environ.get("PEERS_THREADS", "32")),
        connection_limit=1000,
        backlog=1024,
        _quiet=True,
    )
