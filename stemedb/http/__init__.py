"""Everything between waitress and the Falcon app, in one place.

Modules: `dispatch` (quick reads served on the event-loop thread), `cost`
(which of them are too large for it, learned through a plain WSGI wrapper),
`channel` (request deadlines, stalled readers, protocol errors as JSON),
`listener` (build the waitress server, run its loop, drain it), and `route`
(what an endpoint is; shared by the API and the security layer so neither
imports the other's modules for it). Importing this package imports nothing
(`route` needs no waitress): library users never load the server.

Why internals at all: serving quick reads on the loop thread is measured and
worth keeping (docs/benchmarks.md), and waitress has no public hook for it,
nor for a per-request deadline or for closing a client that stops reading.
waitress is pinned exactly (pyproject.toml); before taking a new release run
`make test-waitress-latest` and read docs/architecture.md, "Taking a waitress
release". Each symbol below has a canary in tests/http/test_waitress_canaries.py
that fails with its name if waitress changes it.

Private (underscore) waitress symbols used:

* `waitress.server.create_server(_dispatcher=...)` (listener): the only way to
  give the server our `LoopDispatcher` instead of its own thread pool.
* `BaseWSGIServer._map` (listener, dispatch.accept_in_bursts): the socket map
  the event loop polls; we run the loop ourselves over it, count accepted
  connections in it, and sweep its channels for deadlines.
* `HTTPChannel._flush_outbufs_below_high_watermark` (dispatch.LoopServedChannel
  overrides it): a worker waits in it for the loop to drain a large answer;
  the loop serving inline must not wait for itself, so it skips the wait.

Public-looking but undocumented internals relied on:

* `BaseWSGIServer.run` is replaced by `Listener.serve` (our loop, calling
  `wasyncore.loop(timeout, map, use_poll, count=1)` turn by turn), and
  `BaseWSGIServer.close` by `Listener.drain` (`wasyncore.dispatcher.close` on
  each listener, `wasyncore.close_all(map, ignore_all=True)`).
* `BaseWSGIServer.handle_accept` is replaced on the instance by a loop calling
  the original up to 64 times per turn (dispatch.accept_in_bursts); it reads
  `adj.connection_limit`. `channel_class` is set on the instance
  (channel.install_channel); `effective_host` / `effective_port` give the URL;
  `task_dispatcher.shutdown(cancel_pending=, timeout=)` stops the pool;
  `MultiSocketServer.map` is the socket map when several sockets are bound.
* `ThreadedTaskDispatcher` is subclassed (`set_thread_count`, `add_task(channel)`
  called from `HTTPChannel.received` on the loop thread, `queue`, `shutdown`);
  `channel.requests[0]` with `.command`, `.path`, `.query` (the learned-cost key,
  cost.py), `.error`; `channel.service()`
  and `channel.cancel()`.
* `HTTPChannel` is subclassed (channel.HardenedChannel): `received(data)` and
  `send(data, do_close)` overridden; `request`, `requests`, `connected`, `addr`,
  `will_close`, `close_when_flushed`, `handle_close()` used; the 408 is put in
  `outbufs[-1]` under `outbuf_lock` with `total_outbufs_len` and
  `current_outbuf_count` updated by hand (`write_soon` could block the loop).
* `HTTPChannel.error_task_class` is set to a subclass of `waitress.task.ErrorTask`
  whose `execute` reads `request.error` (`code`, `reason`, `body`) and sets
  `status`, `response_headers`, `content_length`, `set_close_on_finish()`, `write()`.
"""
