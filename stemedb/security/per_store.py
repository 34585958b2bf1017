"""One shared object per store, made on first ask.

The key store, the circuit breakers and the new-agent limit each keep state
(a cache, trip windows, buckets) that the middleware, the routes and the write
service must see alike, so each has one instance per `Store`. The map is weak
so that a closed store (tests open many) takes its instance with it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PerStore(Generic[T]):
    """A thread-safe, weak-keyed map from a store to its one `T`."""

    def __init__(self) -> None:
        self._found: weakref.WeakKeyDictionary[Any, T] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, store: Any, make: Callable[[], T]) -> T:
        """The `T` of `store`; `make()` builds it (under the lock) the first time."""
        with self._lock:
            found = self._found.get(store)
            if found is None:
                found = self._found[store] = make()
            return found
