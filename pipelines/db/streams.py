"""Merge several record-batch streams, each pulled on its own thread, into one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import pyarrow as pa

_QUEUE_BATCHES = 2  # per stream: bounded memory while the consumer is busy


def merge_streams(
    streams: list[Callable[[], Iterator[pa.RecordBatch]]],
) -> Iterator[pa.RecordBatch]:
    """Batches of all streams, each stream pulled on its own thread, in arrival order.

    An error in any stream stops the others (their generators are closed, which ends their
    client processes) and is raised here; so is closing this generator early.
    """
    out: queue.Queue[tuple[int, pa.RecordBatch | BaseException | None]] = queue.Queue(
        maxsize=_QUEUE_BATCHES * len(streams)
    )
    stop = threading.Event()

    def put(item: tuple[int, pa.RecordBatch | BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run(i: int, make: Callable[[], Iterator[pa.RecordBatch]]) -> None:
        batches = make()
        try:
            for batch in batches:
                if not put((i, batch)):
                    return
            put((i, None))
        except BaseException as err:  # handed to the consuming thread
            put((i, err))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    threads = [
        threading.Thread(target=run, args=(i, make), name=f"seam-range-{i}", daemon=True)
        for i, make in enumerate(streams)
    ]
    for t in threads:
        t.start()
    running = len(threads)
    try:
        while running:
            _, item = out.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()
        while True:  # unblock producers waiting on a full queue
            try:
                out.get_nowait()
            except queue.Empty:
                break
        for t in threads:
            t.join()
