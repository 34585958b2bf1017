"""Subject scopes: a scoped writer key writes only inside its concept-path subtree.

What "inside" means per record kind (segment-wise, as in concept paths:
scope `drugs` covers `drugs` and `drugs/semaglutide/label`, not `drugsx`):

* assertion: `subject` (or its input alias `concept_path`);
* alias: both `alias` and `canonical` (an alias redirects reads of a path);
* vote, supersession: the stored assertion(s) they point at (`assertion_hash`;
  `target_hash` and `replacement_hash`). A hash not stored yet passes here:
  the write service answers 404 for it, or it is an assertion earlier in the
  same batch, whose subject was checked;
* epoch: refused, epochs are global (they change every reader's `epoch` lens);
* outcome: admin only, and admin keys cannot be scoped.

The security middleware applies `enforce_scope` to the single-record routes
(403 naming the field). A batch is checked record by record in the write
service instead (`stemedb.security.kinds.caller_for` calls `record_problems`):
an out-of-scope record is `rejected` with `forbidden` and the rest written,
or with `?atomic=true` nothing is (400 `batch_rejected`). Records that are
not even well-formed are left to the write service's 400.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import falcon

from stemedb.errors import Forbidden
from stemedb.http.route import Route
from stemedb.paths import PathError, check_path, is_under
from stemedb.security.body import iter_records, readable_body
from stemedb.store import reads

ROUTE_KINDS = {
    "/v1/assert": "assertion",
    "/v1/assertions": "assertion",
    "/v1/vote": "vote",
    "/v1/epoch": "epoch",
    "/v1/supersede": "supersession",
    "/v1/aliases": "alias",
    "/v1/outcome": "outcome",
}
BATCH_TEMPLATE = "/v1/assert/batch"
MAX_DETAILS = 20

_PATH_FIELDS = {"assertion": ("subject", "concept_path"), "alias": ("alias", "canonical")}
_HASH_FIELDS = {
    "vote": ("assertion_hash",),
    "supersession": ("target_hash", "replacement_hash"),
}


def _path(value: Any) -> str | None:
    try:
        return check_path(value)
    except PathError:
        return None


def _subject_of(store: Any, hash_value: Any) -> str | None:
    if not isinstance(hash_value, str) or len(hash_value) != 64:
        return None
    try:
        raw = bytes.fromhex(hash_value)
    except ValueError:
        return None
    with store.reader() as conn:
        return reads.assertion_subject(conn, raw)


def record_problems(kind: str, record: Any, scope: str, store: Any) -> list[tuple[str, str]]:
    """(field, problem) for each way `record` reaches outside `scope`."""
    if not isinstance(record, dict):
        return []  # not a record at all: the write service refuses it
    if kind in ("epoch", "outcome", "source", "retraction"):  # global: no subtree holds them
        return [("kind", f"a key scoped to {scope!r} cannot write {kind} records")]
    problems = []
    for field in _PATH_FIELDS.get(kind, ()):
        path = _path(record.get(field)) if field in record else None
        if path is not None and not is_under(path, scope):
            problems.append((field, f"{path!r} is outside this key's scope {scope!r}"))
    for field in _HASH_FIELDS.get(kind, ()):
        subject = _subject_of(store, record.get(field))
        if subject is not None and not is_under(subject, scope):
            problems.append(
                (field, f"points at an assertion about {subject!r}, outside the scope {scope!r}")
            )
    return problems


def _items(
    req: falcon.Request, route: Route, max_body_bytes: int
) -> Iterable[tuple[str, str, Any]]:
    """(field prefix, kind, record) for every record of a write body."""
    if route.template == BATCH_TEMPLATE:
        for index, record in iter_records(req, route, max_body_bytes):
            kind = record.get("kind", "assertion") if isinstance(record, dict) else "assertion"
            yield f"{index}.", str(kind), record
        return
    kind = ROUTE_KINDS[route.template]
    for _, record in iter_records(req, route, max_body_bytes):
        yield "", kind, record


def enforce_scope(
    req: falcon.Request, route: Route, scope: str, store: Any, max_body_bytes: int
) -> None:
    """Raise Forbidden if a write request by a key scoped to `scope` reaches outside it."""
    if route.template != BATCH_TEMPLATE and route.template not in ROUTE_KINDS:
        raise Forbidden(
            f"a key scoped to {scope!r} cannot use {route.method} {route.template}",
            [{"field": "X-API-Key", "problem": f"scoped to {scope!r}"}],
        )
    if not readable_body(req, route, max_body_bytes):
        return  # no body, or one the body guard refuses next (413/415)
    details: list[dict[str, str]] = []
    with store.reader():  # one snapshot for every hash looked up below
        for prefix, kind, record in _items(req, route, max_body_bytes):
            for field, problem in record_problems(kind, record, scope, store):
                details.append({"field": prefix + field, "problem": problem})
    if details:
        first = details[0]
        raise Forbidden(
            f"{first['field']}: {first['problem']}"
            + (f" (and {len(details) - 1} more)" if len(details) > 1 else "")
            + "; nothing was written",
            details[:MAX_DETAILS],
        )
