"""`stemedb serve` plus one test-only route that fakes a full disk with PRAGMA max_page_count.

Run as a program by the full-disk test when this machine does not let it
mount a small filesystem. It is the real server (`run_server` with the
default store, routes and middleware) with one extra route:

    POST /_test/page-limit {"spare_pages": N}     limit the file to its size + N pages
    POST /_test/page-limit {"spare_pages": null}  lift the limit (space returns)

The pragma runs on the writer's own connection, through the writer queue
(`Store.write_local`), so it limits exactly the connection that commits. No
product code knows about this route.
"""

from __future__ import annotations

import sys
import time
from typing import Any

NO_LIMIT = 1073741823


def main() -> int:
    import falcon

    from stemedb.api.resources.common import json_response
    from stemedb.api.routing import Route
    from stemedb.errors import InsufficientStorage
    from stemedb.server import default_routes, run_server

    def routes(settings: Any, store: Any, metrics: Any) -> list[Route]:
        def page_limit(req: falcon.Request, resp: falcon.Response) -> None:
            spare = (req.get_media() or {}).get("spare_pages")

            def apply(conn: Any) -> dict[str, int]:
                count = int(conn.execute("PRAGMA page_count").fetchall()[0][0])
                wanted = NO_LIMIT if spare is None else count + int(spare)
                got = int(conn.execute(f"PRAGMA max_page_count={wanted}").fetchall()[0][0])
                return {"page_count": count, "max_page_count": got}

            # The job shares its group commit with whatever is queued (e.g. an audit
            # row of a query); on a full "disk" that neighbour can sink it: retry.
            for _ in range(20):
                try:
                    json_response(resp, store.write_local(apply))
                    return
                except InsufficientStorage:
                    time.sleep(0.05)
            raise InsufficientStorage("could not change the page limit")

        extra = Route("POST", "/_test/page-limit", page_limit, auth="public")
        return [*default_routes(settings, store, metrics), extra]

    code: int = run_server(routes_factory=routes)
    return code


if __name__ == "__main__":
    sys.exit(main())
