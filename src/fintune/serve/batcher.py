"""Micro-batching: concurrent requests wait a few milliseconds to share one forward pass.

Each request puts its texts and a future on a queue. One worker takes what is queued
(waiting up to `max_wait_ms` for more once the first arrives, and always taking what is
already queued, up to `max_batch` texts),
runs the model once in a worker thread so the event loop stays free, and answers every
future. Under load, batches grow and throughput with them; alone, a request waits at most
`max_wait_ms`. At most `max_queue` texts wait for the model: past that, `submit` refuses at
once (ServerBusy), so an overloaded server says so instead of piling up requests that
time out. A caller that is cancelled (its client gone) before its texts reach the model
is dropped: its texts cost no model time, and stop counting against `max_queue` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


class ServerBusy(Exception):
    """The queue is full; the caller should try again shortly."""


class ServerStopping(RuntimeError):
    """The batcher is stopped or stopping: the texts were not classified."""


class BatcherFailed(RuntimeError):
    """The worker stopped on a bug (not the model's error, which fails only its batch):
    nothing more can be classified until the server is restarted."""


log = logging.getLogger(__name__)


@dataclass
class _Job:
    texts: list[str]
    future: asyncio.Future
    waiting: bool = True  # its texts count in stats.waiting


@dataclass
class BatchStats:
    batches: int = 0
    texts: int = 0
    largest: int = 0
    busy_s: float = 0.0  # model time, failed calls' included
    failed: int = 0  # model calls that raised (their texts are in no other counter)
    waiting: int = 0  # texts submitted and not yet in a model call
    refused: int = 0  # requests refused because the queue was full

    def as_dict(self) -> dict:
        return {
            "batches": self.batches,
            "texts": self.texts,
            "largest_batch": self.largest,
            "mean_batch": round(self.texts / self.batches, 2) if self.batches else 0.0,
            "model_busy_s": round(self.busy_s, 3),
            "failed_calls": self.failed,
            "waiting": self.waiting,
            "refused": self.refused,
        }


class MicroBatcher:
    def __init__(
        self,
        predict: Callable[[list[str]], list[dict]],
        max_batch: int = 32,
        max_wait_ms: float = 2,
        max_queue: int = 1024,
    ):
        self.predict = predict
        self.max_batch, self.max_queue = max_batch, max_queue
        self.max_wait_s = max_wait_ms / 1000
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._worker: asyncio.Task | None = None
        self._held: _Job | None = None  # a job that did not fit the last batch
        self._taken: list[_Job] = []  # the jobs of the batch being gathered or run
        self.failed: BatcherFailed | None = None  # the bug the worker stopped on

    def start(self) -> None:
        """Start on the running event loop; a stopped batcher can start again."""
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._held = None
        self.failed = None
        self.stats.waiting = 0
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the worker; every caller still waiting gets an error, none hangs."""
        if self._worker:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        waiting = [self._held] if self._held else []
        while self._queue is not None and not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for job in waiting:
            job.waiting = False  # a cancel still to be noticed must not count it again
        _fail(waiting, ServerStopping("the server is shutting down"))
        self._held = None
        self.stats.waiting = 0
        if self._executor:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def stop_soon(self) -> None:
        """stop(), from a signal handler or another thread: scheduled on the worker's loop."""
        if self._worker is not None:
            loop = self._worker.get_loop()
            loop.call_soon_threadsafe(lambda: loop.create_task(self.stop()))

    async def submit(self, texts: list[str]) -> list[dict]:
        if self.failed is not None:
            # a new one each time: a raise adds its frames to the object's traceback
            raise BatcherFailed(str(self.failed))
        if self._queue is None or self._worker is None or self._worker.done():
            raise ServerStopping("the batcher is not running")
        if self.stats.waiting + len(texts) > self.max_queue:
            self.stats.refused += 1
            raise ServerBusy(
                f"the server is busy: {self.stats.waiting} texts are waiting for the model "
                f"(the limit is {self.max_queue}); try again shortly"
            )
        self.stats.waiting += len(texts)
        job = _Job(texts, asyncio.get_running_loop().create_future())
        job.future.add_done_callback(lambda f: self._leave(job) if f.cancelled() else None)
        await self._queue.put(job)
        return await job.future

    def _leave(self, job: _Job) -> None:
        """The job's texts no longer wait: taken into a model call, or their caller gone."""
        if job.waiting:
            job.waiting = False
            self.stats.waiting -= len(job.texts)

    async def _next_job(self, timeout: float | None = None) -> _Job:
        if self._held is not None:
            job, self._held = self._held, None
            return job
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:  # past the deadline, still take what is already queued
            try:
                return self._queue.get_nowait()
            except asyncio.QueueEmpty:
                raise TimeoutError from None
        # not asyncio.wait_for: on Python 3.11 a cancel (stop()) that comes as a job arrives
        # is dropped and the job returned, and the worker then never stops
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    async def _run(self) -> None:
        try:
            await self._serve()
        except Exception as error:  # a bug here: say so to every caller, not 'stopping'
            log.exception("fintune serve: the batching worker stopped on a bug")
            # the type only, as every other 500: the message may quote a request's text
            self.failed = BatcherFailed(
                f"the batching worker stopped on a bug ({type(error).__name__}; see the log); "
                "nothing more can be classified: restart the server"
            )
            waiting = [*self._taken, *([self._held] if self._held else [])]
            while not self._queue.empty():
                waiting.append(self._queue.get_nowait())
            for job in waiting:
                self._leave(job)
                _fail([job], BatcherFailed(str(self.failed)))
            self._held, self._taken = None, []

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = self._taken = [await self._next_job()]
            if jobs[0].future.cancelled():
                self._leave(jobs[0])
                continue
            size = len(jobs[0].texts)  # a single job larger than max_batch runs alone
            deadline = loop.time() + self.max_wait_s
            while size < self.max_batch:
                try:
                    job = await self._next_job(deadline - loop.time())
                except TimeoutError:
                    break
                except asyncio.CancelledError:  # stopped while gathering: off the queue already
                    for job in jobs:
                        self._leave(job)
                    _fail(jobs, ServerStopping("the server is shutting down"))
                    raise
                if job.future.cancelled():
                    self._leave(job)
                    continue
                if size + len(job.texts) > self.max_batch:
                    self._held = job  # first in the next batch
                    break
                jobs.append(job)
                size += len(job.texts)
            for job in jobs:
                self._leave(job)
            jobs = [job for job in jobs if not job.future.cancelled()]  # gone while it gathered
            if jobs:
                await self._answer(jobs, loop)
            self._taken = []

    async def _answer(self, jobs: list[_Job], loop: asyncio.AbstractEventLoop) -> None:
        texts = [t for job in jobs for t in job.texts]
        start = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self.predict, texts)
        except asyncio.CancelledError:
            _fail(jobs, ServerStopping("the server is shutting down"))
            raise
        except Exception as error:  # one bad batch must not stop the server
            self.stats.busy_s += time.perf_counter() - start
            self.stats.failed += 1
            if len(jobs) == 1:
                _fail(jobs, error)
            else:  # answer the jobs one by one, so only the one that fails gets the error
                try:
                    for job in jobs:
                        if not job.future.cancelled():  # its caller is gone: no model time
                            await self._answer([job], loop)
                except asyncio.CancelledError:  # stopped meanwhile: no job left waiting
                    _fail(jobs, ServerStopping("the server is shutting down"))
                    raise
            return
        self.stats.busy_s += time.perf_counter() - start
        self.stats.batches += 1
        self.stats.texts += len(texts)
        self.stats.largest = max(self.stats.largest, len(texts))
        offset = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(results[offset : offset + len(job.texts)])
            offset += len(job.texts)


def _fail(jobs: list[_Job], error: Exception) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(error)
