"""LitServe's batching loop, with the batch window opened by the first request instead of by the clock.

LitServe's BatchedLoop collects requests in windows of `batch_timeout` seconds, asking the request queue every
millisecond whether one has come: an idle server with three batched endpoints kept half of a 2-core machine busy,
and a request waited for whatever remained of the current window. Here an idle worker blocks until a request comes,
then waits at most `batch_timeout` for others to join it.
"""
from __future__ import annotations

from queue import Empty

from litserve.loops.simple_loops import BatchedLoop

IDLE_WAIT = 1.0  # seconds between looks at the queue when nothing comes (as LitServe's unbatched loop)


class _FirstThen:
    """A queue whose next item is `first`, then the queue's own."""

    def __init__(self, first, queue):
        self.first, self.queue = [first], queue

    def get(self, block=True, timeout=None):
        return self.first.pop() if self.first else self.queue.get(block, timeout)

    def get_nowait(self):
        return self.first.pop() if self.first else self.queue.get_nowait()


class FirstRequestBatchedLoop(BatchedLoop):
    def get_batch_requests(self, lit_api, request_queue, transport):
        try:
            first = request_queue.get(timeout=IDLE_WAIT)
        except Empty:
            return [], []
        return super().get_batch_requests(lit_api, _FirstThen(first, request_queue), transport)
