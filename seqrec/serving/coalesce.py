"""Micro-batching: coalesce concurrent requests into one batched model call.

Two flavours, neither waits on a timer: :class:`Batcher` for threads (the runtime's
Python API) and :class:`Coalescer` for an asyncio event loop (the HTTP server).

:class:`Batcher` uses *combining*: a thread that submits a job
while no batch is running becomes the leader, takes every job queued so far (its own
included), computes them in one call and hands each waiting thread its result. Jobs
that arrive while a batch is running wait for it and then form the next batch. At low
load a job is computed immediately by its own thread (no added latency, no thread
hop); under load the batches grow by themselves, so the per-item matrix product is
read once for many requests.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seqrec.serving.requests import Request
    from seqrec.serving.runtime import Runtime


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


class Coalescer:
    """Micro-batching on the event loop: the requests that arrive together (parsed in
    the same loop iteration, or while the previous batch was being computed) are
    answered by one :meth:`Runtime.process` call, i.e. one batched model call per
    round. Nothing waits on a timer: at low load a batch is a single request.

    ``offload``: compute in a dedicated worker thread (the store may block on I/O, and
    the loop keeps parsing requests meanwhile); else inline on the loop.
    """

    def __init__(self, runtime: Runtime, offload: bool, max_batch: int = 64) -> None:
        self.runtime = runtime
        self.offload = offload
        self.max_batch = max_batch
        self.pending: list[tuple[Request, asyncio.Future[Any]]] = []
        self.scheduled = False
        self.busy = False
        self._executor: ThreadPoolExecutor | None = None

    async def submit(self, req: Request) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self.pending.append((req, fut))
        self._kick(loop)
        result = await fut
        if isinstance(result, BaseException):
            raise result
        return result

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.pending and not self.scheduled and not self.busy:
            self.scheduled = True
            loop.call_soon(self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self.scheduled = False
        if self.busy or not self.pending:
            return
        batch = self.pending[: self.max_batch]
        del self.pending[: self.max_batch]
        reqs = [r for r, _ in batch]
        if not self.offload:
            self._deliver(batch, self._process(reqs))
            self._kick(loop)
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="seqrec-batch")
        self.busy = True
        work = loop.run_in_executor(self._executor, self._process, reqs)

        def done(f: asyncio.Future[list[Any]]) -> None:
            self.busy = False
            exc = f.exception()
            self._deliver(batch, [exc] * len(batch) if exc else f.result())
            self._kick(loop)

        work.add_done_callback(done)

    def _process(self, reqs: list[Request]) -> list[Any]:
        try:
            return self.runtime.process(reqs)
        except Exception as exc:  # never leave a request without an answer
            return [exc] * len(reqs)

    @staticmethod
    def _deliver(batch: list[tuple[Request, asyncio.Future[Any]]], results: list[Any]) -> None:
        for (_, fut), res in zip(batch, results, strict=True):
            if not fut.done():  # a cancelled request (client gone) is skipped
                fut.set_result(res)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
