"""An LRU cache of answers keyed by the audio's content hash and the requested tasks."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any


def cache_key(audio: bytes, tasks: Iterable[str], options: str = "") -> str:
    """sha256 of the uploaded bytes + the sorted task list (+ any option string that changes the answer)."""
    digest = hashlib.sha256(audio).hexdigest()
    return f"{digest}:{','.join(sorted(set(tasks)))}:{options}"


class AnswerCache:
    """Thread-safe LRU with hit/miss counters; ``capacity`` 0 disables caching."""

    def __init__(self, capacity: int = 256) -> None:
        if capacity < 0:
            raise ValueError(f"cache capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
            return None

    def put(self, key: str, value: Any) -> None:
        if self.capacity == 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
