"""Latency decomposition probe for `python bench/profile_hotpath.py trace` (bench only).

Loaded by the server under test through PYTHONPATH when BENCH_TRACE_FILE is
set. It wraps three waitress internals to time, per request:

* queue:   request parsed by the event loop -> a worker thread starts it (or,
           for a quick read, the event loop itself: see stemedb.http.dispatch);
* service: the whole service() (admission wait + app + sending);
* gap:     response sent -> the next request's first bytes read by the event
           loop on that keep-alive connection (the event loop's pick-up delay;
           the client answers within microseconds).

Every second it rewrites BENCH_TRACE_FILE with the samples so far (JSON, in
seconds). Not part of the product; nothing here runs unless the variable is set.
"""

from __future__ import annotations

import json
import os
import threading
import time

_PATH = os.environ.get("BENCH_TRACE_FILE")

if _PATH:
    from waitress import channel as _channel
    from waitress import task as _task

    _samples: dict[str, list[float]] = {"queue": [], "service": [], "gap": []}
    _add_task = _task.ThreadedTaskDispatcher.add_task
    _service = _channel.HTTPChannel.service
    _received = _channel.HTTPChannel.received

    def add_task(self, channel):  # type: ignore[no-untyped-def]
        channel._bench_queued = time.perf_counter()
        return _add_task(self, channel)

    def service(self):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        queued = getattr(self, "_bench_queued", None)
        if queued is not None:
            _samples["queue"].append(started - queued)
        try:
            return _service(self)
        finally:
            ended = time.perf_counter()
            _samples["service"].append(ended - started)
            self._bench_sent = ended

    def received(self, data):  # type: ignore[no-untyped-def]
        sent = getattr(self, "_bench_sent", None)
        if sent is not None:
            _samples["gap"].append(time.perf_counter() - sent)
            self._bench_sent = None
        return _received(self, data)

    _task.ThreadedTaskDispatcher.add_task = add_task  # type: ignore[method-assign]
    try:
        from stemedb.http import dispatch as _dispatch
    except ImportError:  # a tree from before the loop dispatcher
        pass
    else:
        _loop_add_task = _dispatch.LoopDispatcher.add_task

        def loop_add_task(self, channel):  # type: ignore[no-untyped-def]
            channel._bench_queued = time.perf_counter()
            return _loop_add_task(self, channel)

        _dispatch.LoopDispatcher.add_task = loop_add_task  # type: ignore[method-assign]
    _channel.HTTPChannel.service = service  # type: ignore[method-assign]
    _channel.HTTPChannel.received = received  # type: ignore[method-assign]

    def _dump(path: str = _PATH) -> None:
        while True:
            time.sleep(1.0)
            snapshot = {k: list(v) for k, v in _samples.items()}
            tmp = f"{path}.tmp"
            with open(tmp, "w") as f:
                json.dump(snapshot, f)
            os.replace(tmp, path)

    threading.Thread(target=_dump, name="bench-trace", daemon=True).start()
