"""PerStore: one shared instance per store, built once, forgotten with the store."""

from __future__ import annotations

import gc

from stemedb.security.per_store import PerStore


class _Store:
    """Stands in for a Store: any weak-referenceable object is a key."""


def test_one_instance_per_store_built_once_and_dropped_with_the_store() -> None:
    made: list[object] = []

    def make() -> object:
        made.append(object())
        return made[-1]

    shared: PerStore[object] = PerStore()
    first, second = _Store(), _Store()
    assert shared.get(first, make) is shared.get(first, make) is made[0]
    assert shared.get(second, make) is made[1] and len(made) == 2
    del first
    gc.collect()
    assert len(shared._found) == 1  # the closed store's instance went with it
