"""Entry-level parallelism of the store: the coding and decoding of one entry's vector and masks
run in threads (numpy, zstd and the range coder release the GIL for their bulk work), while
files are read and written by the calling thread, in order."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from tallmerge.errors import TallmergeError

A = TypeVar("A")
B = TypeVar("B")


def workers() -> int:
    """Threads to use: ``TALLMERGE_THREADS`` if set, else the cores this process may run on."""
    value = os.environ.get("TALLMERGE_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise TallmergeError(f"TALLMERGE_THREADS must be a positive integer, got {value!r}")
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def ordered_map(fn: Callable[[A], B], items: Iterable[A], threads: int | None = None) -> Iterator[B]:
    """``fn(item)`` for each item, yielded in order, computed by ``threads`` threads with at most
    ``threads + 1`` items in flight (so memory holds a few entries, never all of them). With one
    thread it runs inline."""
    threads = threads or workers()
    if threads == 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(threads) as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) > threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
