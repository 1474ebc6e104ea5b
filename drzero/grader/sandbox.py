"""Killable worker processes for the slow, untrusted part of grading.

``signal.alarm`` (what math-verify and the paper's reference grader use for timeouts)
only works in the main thread of the main process. Here each worker is a separate
process with a memory cap; a job that outlives its deadline gets its worker terminated
and replaced, and the caller gets ``None`` for it. Workers are started with ``spawn``
as ``python -m drzero.grader.sandbox`` (no fork of a parent holding torch threads, and
no re-import of the caller's ``__main__``, which ``multiprocessing``'s spawn would do)
and reused across calls.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import time
from multiprocessing.connection import Connection, wait

WORKER_MEMORY_BYTES = 4 * 1024**3


def _worker_main(conn, memory_bytes: int) -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    except (ImportError, ValueError, OSError):
        pass
    os.environ["DRZERO_GRADER_WORKER"] = "1"
    from drzero.grader import core

    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        job_id, fn_name, args = job
        try:
            result = getattr(core, fn_name)(*args)
        except MemoryError:
            result = None
        except Exception:  # noqa: BLE001 - a grading failure is a wrong answer, never a crash
            result = None
        try:
            conn.send((job_id, result))
        except (BrokenPipeError, OSError):
            return


class _Duplex:
    """Two one-way ``Connection``s used as one (what ``Pipe()`` gives, across exec)."""

    def __init__(self, read_fd: int, write_fd: int):
        self.reader = Connection(read_fd, writable=False)
        self.writer = Connection(write_fd, readable=False)

    def send(self, obj):
        self.writer.send(obj)

    def recv(self):
        return self.reader.recv()

    def close(self):
        self.reader.close()
        self.writer.close()


class _Worker:
    def __init__(self):
        to_child_r, to_child_w = os.pipe()
        to_parent_r, to_parent_w = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "drzero.grader.sandbox", str(to_child_r), str(to_parent_w)],
            pass_fds=(to_child_r, to_parent_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(to_parent_w)
        self.duplex = _Duplex(to_parent_r, to_child_w)
        self.conn = self.duplex.reader  # what ``wait`` watches
        self.job = None  # (job_id, deadline)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self):
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        finally:
            self.duplex.close()


class WorkerPool:
    """A fixed number of killable workers; ``map`` runs jobs with per-job deadlines."""

    def __init__(self, workers: int):
        self.size = max(1, workers)
        self._workers: list[_Worker] = []

    def _ensure(self):
        for w in [w for w in self._workers if not w.alive()]:
            self._workers.remove(w)
            w.kill()
        while len(self._workers) < self.size:
            self._workers.append(_Worker())

    def map(self, fn_name: str, arg_list: list[tuple], timeout_s: float) -> list:
        """Run ``core.<fn_name>(*args)`` for each args; ``None`` where it timed out or failed."""
        results: list = [None] * len(arg_list)
        pending = list(range(len(arg_list)))[::-1]
        self._ensure()
        idle = list(self._workers)
        busy: dict = {}
        while pending or busy:
            while pending and idle:
                w = idle.pop()
                job_id = pending.pop()
                try:
                    w.duplex.send((job_id, fn_name, arg_list[job_id]))
                except (BrokenPipeError, OSError):
                    pending.append(job_id)
                    self._replace(w)
                    idle.append(self._workers[-1])
                    continue
                w.job = (job_id, time.monotonic() + timeout_s)
                busy[w.conn] = w
            if not busy:
                continue
            now = time.monotonic()
            next_deadline = min(w.job[1] for w in busy.values())
            ready = wait(list(busy), timeout=max(0.0, next_deadline - now))
            for conn in ready:
                w = busy.pop(conn)
                try:
                    job_id, result = conn.recv()
                    results[job_id] = result
                    w.job = None
                    idle.append(w)
                except (EOFError, OSError):  # worker died (memory cap): replace it
                    self._replace(w)
                    idle.append(self._workers[-1])
            now = time.monotonic()
            for conn, w in list(busy.items()):
                if w.job[1] <= now:
                    busy.pop(conn)
                    self._replace(w)
                    idle.append(self._workers[-1])
        return results

    def _replace(self, w: _Worker):
        w.kill()
        self._workers.remove(w)
        self._workers.append(_Worker())

    def close(self):
        for w in self._workers:
            try:
                w.duplex.send(None)
            except (BrokenPipeError, OSError):
                pass
            w.kill()
        self._workers = []


_POOLS: dict[int, WorkerPool] = {}


def get_pool(workers: int) -> WorkerPool:
    """A process-wide pool of ``workers`` workers, created on first use."""
    if workers not in _POOLS:
        _POOLS[workers] = WorkerPool(workers)
    return _POOLS[workers]


@atexit.register
def _close_pools():
    for pool in _POOLS.values():
        pool.close()
    _POOLS.clear()


if __name__ == "__main__":
    _worker_main(_Duplex(int(sys.argv[1]), int(sys.argv[2])), WORKER_MEMORY_BYTES)
