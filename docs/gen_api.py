"""Regenerate the endpoint table of docs/api.md from the live route table.

    .venv/bin/python docs/gen_api.py           # rewrite the section in place
    .venv/bin/python docs/gen_api.py --check   # exit 1 if it is out of date (CI/tests)

The table is built from `/openapi.json` exactly as a server would serve it,
generated in-process (no server, no database opened) from the same route
table the server mounts; the Python client column comes from
`stemedb.client.api.ENDPOINT_METHODS`. Only the text between the two
markers is touched, so the prose around it stays hand-written.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

BEGIN = "<!-- BEGIN GENERATED: endpoint table (python docs/gen_api.py) -->"
END = "<!-- END GENERATED: endpoint table -->"
API_MD = Path(__file__).resolve().parent / "api.md"
METHODS = ("get", "post", "put", "patch", "delete")
AUTH = {"public": "none", "read": "reader", "write": "writer", "admin": "admin"}


def openapi_document() -> dict[str, Any]:
    """GET /openapi.json of an app built like `stemedb serve` builds it (store unopened)."""
    import falcon.testing

    from stemedb import __version__
    from stemedb.api.app import create_app
    from stemedb.config import Settings
    from stemedb.metrics import Metrics
    from stemedb.server import default_routes
    from stemedb.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db_dir=Path(tmp) / "db", wal_dir=Path(tmp) / "wal")
        metrics = Metrics(__version__)
        routes = default_routes(settings, Store(settings), metrics)
        app = create_app(settings, routes, metrics)
        result = falcon.testing.TestClient(app).simulate_get("/openapi.json")
        document: dict[str, Any] = result.json
        return document


def endpoint_table(document: dict[str, Any]) -> str:
    from stemedb.client.api import ENDPOINT_METHODS

    rows = [
        "| method | path | role | what it does | Python client |",
        "|---|---|---|---|---|",
    ]
    for path, item in document["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            key = f"{method.upper()} {path}"
            client = ENDPOINT_METHODS.get(key)
            call = f"`client.{client}()`" if client else ("—" if client == "" else "**missing**")
            role = AUTH.get(op.get("x-stemedb-auth", ""), op.get("x-stemedb-auth", "?"))
            summary = str(op.get("summary", "")).replace("|", "\\|")
            rows.append(f"| `{method.upper()}` | `{path}` | {role} | {summary} | {call} |")
    return "\n".join(rows)


def render(text: str, table: str) -> str:
    """`text` with the generated section replaced by `table`."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{API_MD}: markers not found:\n{BEGIN}\n{END}")
    return text[: start + len(BEGIN)] + "\n\n" + table + "\n\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if api.md is out of date")
    parser.add_argument("--file", type=Path, default=API_MD, help="the Markdown file to update")
    args = parser.parse_args(argv)
    current = args.file.read_text("utf-8")
    wanted = render(current, endpoint_table(openapi_document()))
    if args.check:
        if wanted != current:
            print(f"{args.file} is out of date: run python docs/gen_api.py", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        args.file.write_text(wanted, "utf-8")
        print(f"updated {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
