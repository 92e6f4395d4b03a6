"""Micro-batching: coalesce concurrent scoring requests into one model call.

:class:`Batcher` uses *combining* rather than a timer: a thread that submits a job
while no batch is running becomes the leader, takes every job queued so far (its own
included), computes them in one call and hands each waiting thread its result. Jobs
that arrive while a batch is running wait for it and then form the next batch. At low
load a job is computed immediately by its own thread (no added latency, no thread
hop); under load the batches grow by themselves, so the per-item matrix product is
read once for many requests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any


class Job:
    """One unit of work; ``compute`` fills in the result attributes."""

    def __init__(self) -> None:
        self.done = False
        self.error: BaseException | None = None


class Batcher:
    """Runs ``compute(jobs)`` on coalesced batches of at most ``max_batch`` jobs."""

    def __init__(
        self,
        compute: Callable[[Sequence[Any]], None],
        max_batch: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._compute = compute
        self.max_batch = max_batch
        self.on_batch = on_batch
        self._cv = threading.Condition(threading.Lock())
        self._queue: list[Job] = []
        self._busy = False
        self.n_batches = 0
        self.n_jobs = 0

    def run(self, job: Job) -> Job:
        """Compute ``job`` (possibly together with others); re-raises its error."""
        with self._cv:
            self._queue.append(job)
        while True:
            with self._cv:
                while not job.done and self._busy:
                    self._cv.wait()
                if job.done:
                    break
                self._busy = True
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
            try:
                self._execute(batch)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()
        if job.error is not None:
            raise job.error
        return job

    def _execute(self, batch: list[Job]) -> None:
        try:
            self._compute(batch)
        except Exception as exc:  # every job of a failed batch reports the error
            for j in batch:
                j.error = exc
        finally:
            for j in batch:
                j.done = True
            self.n_batches += 1
            self.n_jobs += len(batch)
            if self.on_batch is not None:
                self.on_batch(len(batch))
