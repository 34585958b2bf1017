"""Regression: NDJSON bodies read through Falcon's BoundedStream yield every line.

Falcon's BoundedStream.readline() accounts the requested limit as consumed, so
a readline-based reader stopped after the first line of a batch.
"""

from __future__ import annotations

import falcon
from falcon import testing

from stemedb.api.media import iter_ndjson


class _Lines:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [[n, v] for n, v in iter_ndjson(req.bounded_stream)]


def test_every_ndjson_line_is_read_from_a_bounded_stream() -> None:
    app = falcon.App()
    app.add_route("/lines", _Lines())
    body = b"".join(b'{"i":%d}\n' % i for i in range(5000)) + b'{"last":true}'
    result = testing.TestClient(app).simulate_post(
        "/lines", body=body, headers={"Content-Type": "application/x-ndjson"}
    )
    lines = result.json
    assert len(lines) == 5001
    assert lines[0] == [1, {"i": 0}]
    assert lines[-1] == [5001, {"last": True}]
