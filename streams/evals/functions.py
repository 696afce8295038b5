"""Users' evaluator functions (``kind: python``) run in worker subprocesses, so a runaway one can be stopped.

A thread cannot be killed: a function that never returns would keep its thread (and whatever it holds)
for the life of the process, and enough of them would starve the threads the evaluation worker itself
needs. A process can be: each call gets ``timeout`` seconds of running time in one of a few worker
processes (``multiprocessing`` with *spawn*, nothing of the parent's state is inherited); a call that
takes longer is an evaluation error and its worker process is terminated (SIGTERM) and replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
from multiprocessing.pool import Pool
from typing import Any

import structlog

from streams.evals.call import Call

log = structlog.get_logger(__name__)

PROCESSES = 2  # worker processes: python evaluators running at once, per loopwatch process
IMPORT_TIMEOUT = 120.0  # seconds a worker may take to start and import the function's module (not timed)


def _invoke(function: str, call: Call) -> Any:
    """In the worker process: call ``package.module:function`` (imported already by ``_import``)."""
    module_name, _, name = function.partition(":")
    return getattr(importlib.import_module(module_name), name)(call)


def _import(module_name: str) -> None:
    importlib.import_module(module_name)


class FunctionTimeoutError(Exception):
    def __init__(self, timeout: float) -> None:
        super().__init__(f"timed out after {timeout:g} s")


class _Worker:
    """One worker process (a ``multiprocessing`` pool of one) and the modules it has imported."""

    def __init__(self) -> None:
        self.pool: Pool = multiprocessing.get_context("spawn").Pool(1)
        self.modules: set[str] = set()


class FunctionRunner:
    """Calls users' functions in ``processes`` spawned worker processes, each call with a real timeout.

    The timeout counts the function's own running time: a worker is started, and the function's module
    imported in it, before the clock starts. A call that runs out of time terminates its worker (only
    that call is lost); the next call starts a fresh one."""

    def __init__(self, processes: int = PROCESSES) -> None:
        self._processes = processes
        self._idle: asyncio.Queue[_Worker | None] | None = None
        self._workers: set[_Worker] = set()

    async def call(self, function: str, call: Call, timeout: float) -> Any:
        """The function's answer; ``FunctionTimeoutError`` when it runs longer than ``timeout``, or any
        exception it (or importing it) raised."""
        if self._idle is None:
            self._idle = asyncio.Queue()
            for _ in range(self._processes):
                self._idle.put_nowait(None)
        worker = await self._idle.get()
        try:
            if worker is None:
                worker = _Worker()
                self._workers.add(worker)
            module_name = function.partition(":")[0]
            if module_name not in worker.modules:
                await asyncio.wait_for(_apply(worker.pool, _import, module_name), IMPORT_TIMEOUT)
                worker.modules.add(module_name)
            try:
                return await asyncio.wait_for(_apply(worker.pool, _invoke, function, call), timeout)
            except TimeoutError:
                log.warning("evaluator_function.timed_out", function=function, timeout_seconds=timeout)
                await self._retire(worker)
                worker = None
                raise FunctionTimeoutError(timeout) from None
        except TimeoutError:  # the import: the worker is stuck starting
            if worker is not None:
                await self._retire(worker)
                worker = None
            raise
        finally:
            self._idle.put_nowait(worker)

    async def _retire(self, worker: _Worker) -> None:
        """Terminate the worker (SIGTERM), the runaway call with it."""
        self._workers.discard(worker)
        await asyncio.to_thread(_terminate, worker.pool)

    async def aclose(self) -> None:
        workers, self._workers = list(self._workers), set()
        for worker in workers:
            await asyncio.to_thread(_terminate, worker.pool)


async def _apply(pool: Pool, function: Any, *args: Any) -> Any:
    """``pool.apply_async`` as an awaitable (the pool answers from its own thread)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        def apply() -> None:
            if not future.done():
                (future.set_result if ok else future.set_exception)(value)

        loop.call_soon_threadsafe(apply)

    pool.apply_async(
        function,
        args,
        callback=lambda value: settle(True, value),
        error_callback=lambda exc: settle(False, exc),
    )
    return await future


def _terminate(pool: Pool) -> None:
    with contextlib.suppress(Exception):
        pool.terminate()
        pool.join()
