"""Greedy micro-batching: one predict call for every request that queued up while the previous one ran.

There is no batching window and no timer. A request that finds the model idle is predicted at once (after one turn of
the event loop, so that requests read from the sockets in the same turn join it). Requests that arrive while a predict
runs wait in a FIFO queue; the next predict takes all of them, up to `max_rows` rows. Sparse traffic therefore pays
nothing for batching, and concurrent single-row traffic pays one predict per batch instead of one per request.

Every predict call, merged or not, goes through this one queue, so the model is never called concurrently. If a
merged predict fails, each of its requests is predicted alone, so one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from model_server.parsing import Frame
from model_server.scoring import Scorer

log = logging.getLogger("model_server.batching")

BatchObserver = Callable[[int, int, float], None]  # (requests, rows, predict seconds)
ScoredObserver = Callable[[Sequence[Frame]], None]  # the frames a predict call scored (drift monitoring)


@dataclass(eq=False)
class _Job:
    future: asyncio.Future[Any]
    frame: Frame | None = None
    params: dict[str, Any] | None = None
    call: Callable[[], Any] | None = None

    @property
    def rows(self) -> int:
        return self.frame.n_rows if self.frame is not None else 0


class MicroBatcher:
    """Serialises and merges predict calls on the running event loop."""

    def __init__(
        self,
        scorer: Scorer,
        *,
        max_rows: int,
        mergeable: bool,
        in_thread: bool = False,
        observe: BatchObserver | None = None,
        on_scored: ScoredObserver | None = None,
    ) -> None:
        self._scorer = scorer
        self._max_rows = max_rows
        self._mergeable = mergeable and max_rows > 1
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict") if in_thread else None
        self._observe = observe
        self._on_scored = on_scored
        self._queue: deque[_Job] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._busy = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def predict(self, frame: Frame, params: dict[str, Any] | None) -> Any:
        """The model's output for this frame's rows (a slice of a merged batch's output)."""
        return await self._submit(_Job(asyncio.get_running_loop().create_future(), frame=frame, params=params))

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` (which calls the model) in the predict slot, alone."""
        return await self._submit(_Job(asyncio.get_running_loop().create_future(), call=fn))

    async def _submit(self, job: _Job) -> Any:
        if self._task is None or self._task.done():
            raise RuntimeError("the batcher is not running")
        self._queue.append(job)
        self._wakeup.set()
        return await job.future

    @property
    def idle(self) -> bool:
        return not self._queue and not self._busy

    async def stop(self, timeout: float = 10.0) -> None:
        """Let queued work finish (up to `timeout` seconds), then stop."""
        deadline = time.monotonic() + timeout
        while not self.idle and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            # One loop turn, not a timer: requests parsed in the same turn as the first one join its batch.
            await asyncio.sleep(0)
            jobs = self._take()
            if not jobs:
                continue
            self._busy = True
            try:
                if self._executor is None:
                    outcomes = self._run_jobs(jobs)
                else:
                    outcomes = await loop.run_in_executor(self._executor, self._run_jobs, jobs)
            finally:
                self._busy = False
            for job, (ok, value) in zip(jobs, outcomes, strict=True):
                if job.future.done():  # the request was cancelled meanwhile
                    continue
                if ok:
                    job.future.set_result(value)
                else:
                    job.future.set_exception(value)
            if self._on_scored is not None:
                # On the event loop (also with PREDICT_IN_THREAD), after the answers are handed back.
                scored = [job.frame for job, (ok, _) in zip(jobs, outcomes, strict=True) if ok and job.frame]
                if scored:
                    self._on_scored(scored)

    def _take(self) -> list[_Job]:
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()
        if not self._queue:
            return []
        first = self._queue.popleft()
        jobs = [first]
        if not self._mergeable or first.frame is None or first.params is not None:
            return jobs
        layout, rows = first.frame.layout, first.rows
        while self._queue:
            nxt = self._queue[0]
            if nxt.future.done():
                self._queue.popleft()
                continue
            if nxt.frame is None or nxt.params is not None or nxt.frame.layout != layout:
                break
            if rows + nxt.rows > self._max_rows:
                break
            jobs.append(self._queue.popleft())
            rows += nxt.rows
        return jobs

    def _run_jobs(self, jobs: list[_Job]) -> list[tuple[bool, Any]]:
        """Predict for every job; never raises (each outcome is (ok, value or exception))."""
        if len(jobs) > 1:
            started = time.perf_counter()
            try:
                frames = [job.frame for job in jobs if job.frame is not None]
                outputs = self._scorer.predict_frames(frames, None)
            except Exception as exc:
                log.info("a merged predict of %d requests failed (%r); predicting each alone", len(jobs), exc)
            else:
                self._record(len(jobs), sum(job.rows for job in jobs), started)
                return [(True, output) for output in outputs]
        return [self._run_one(job) for job in jobs]

    def _run_one(self, job: _Job) -> tuple[bool, Any]:
        started = time.perf_counter()
        try:
            if job.call is not None:
                value = job.call()
            else:
                assert job.frame is not None
                value = self._scorer.predict_frames([job.frame], job.params)[0]
        except Exception as exc:
            return False, exc
        self._record(1, job.rows, started)
        return True, value

    def _record(self, requests: int, rows: int, started: float) -> None:
        if self._observe is not None:
            self._observe(requests, rows, time.perf_counter() - started)
