"""Killable, pre-warmed worker processes: where every grade runs.

``signal.alarm`` (what math-verify and the paper's reference grader use for timeouts)
only works in the main thread of the main process, and it cannot stop a C-level sympy
computation. Here each worker is a separate process with a memory cap, started as
``python -m drzero.grader.sandbox`` (no fork of a parent holding torch threads, and no
re-import of the caller's ``__main__``, which ``multiprocessing``'s spawn would do).

A worker imports the grader modes and grades a warm-up item in every mode before it
reports ready, so start-up (about a second: sympy, math-verify, the LaTeX grammar) is
never charged to an item. A job's deadline starts when it is handed to a ready worker;
a job that outlives it gets its worker killed and replaced, and the caller gets ``None``
for it. The pool waits for replacements to warm up before handing them work.

Jobs are named: the worker runs ``modes.JOBS[name](*args)`` and nothing else.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import time
from multiprocessing.connection import Connection, wait

from drzero.errors import DrZeroError

WORKER_MEMORY_BYTES = 4 * 1024**3
STARTUP_TIMEOUT_S = 120.0  # a worker that cannot import and warm up in this long is an error
JOB_TRIES = 3  # a job whose worker dies under it is retried on a fresh one, up to this many tries in all
START_TRIES = 3  # workers that die while starting, in a row, before the pool gives up
_READY = "ready"
RETRIES = [0]  # jobs retried because their worker died, over the process's lifetime (the grader/retries metric)


class WorkersDying(DrZeroError):
    """Grader workers keep dying: the pool stops rather than hand back grades it cannot vouch for."""


def _worker_main(conn, memory_bytes: int) -> None:
    import signal

    for name in ("SIGINT", "SIGUSR1"):  # a Ctrl-C or SLURM's warning is for the trainer, which may still grade its step
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    except (ImportError, ValueError, OSError):
        pass
    from drzero.grader.modes import JOBS

    for job in JOBS.values():  # warm imports, regex caches and the LaTeX parser
        try:
            job("the answer is $\\boxed{\\frac{1}{2}}$", "0.5", "auto")
        except Exception:  # noqa: BLE001 - warm-up is best effort
            pass
    conn.send((_READY, None))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        job_id, name, args = job
        try:
            result = JOBS[name](*args)
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
        self.started = time.monotonic()
        self.ready = False
        self.job = None  # (job_id, deadline)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self):
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        finally:
            self.duplex.close()


def _death(w: _Worker) -> str:
    """How a worker ended, for the error line."""
    try:
        code = w.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return "still running"
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class WorkerPool:
    """A fixed number of killable workers; ``map`` runs named jobs with per-job deadlines."""

    def __init__(self, workers: int):
        self.size = max(1, workers)
        self._workers: list[_Worker] = []
        self._ensure()  # start (and warm) at once

    def _ensure(self):
        for w in [w for w in self._workers if not w.alive()]:
            self._workers.remove(w)
            w.kill()
        while len(self._workers) < self.size:
            self._workers.append(_Worker())

    def _replace(self, w: _Worker) -> _Worker:
        w.kill()
        self._workers.remove(w)
        fresh = _Worker()
        self._workers.append(fresh)
        return fresh

    def warm(self) -> None:
        """Block until every worker is ready (imports done, warm-up graded)."""
        self._ensure()
        self.map("drzero", [], 1.0)

    def map(self, name: str, arg_list: list[tuple], timeout_s: float) -> list:
        """Run ``JOBS[name](*args)`` for each args; ``None`` where it timed out or failed.
        Each job gets ``timeout_s`` from the moment a warm worker takes it."""
        results: list = [None] * len(arg_list)
        pending = list(range(len(arg_list)))[::-1]
        tries = [0] * len(arg_list)  # how many workers died holding each job
        failed_starts = deaths = 0  # in a row
        self._ensure()
        starting = {w.conn: w for w in self._workers if not w.ready}
        idle = [w for w in self._workers if w.ready]
        busy: dict = {}
        while pending or busy or (starting and not arg_list):
            while pending and idle:
                w = idle.pop()
                job_id = pending.pop()
                try:
                    w.duplex.send((job_id, name, arg_list[job_id]))
                except (BrokenPipeError, OSError):
                    pending.append(job_id)
                    fresh = self._replace(w)
                    starting[fresh.conn] = fresh
                    continue
                w.job = (job_id, time.monotonic() + timeout_s)
                busy[w.conn] = w
            if not busy and not starting:
                continue
            now = time.monotonic()
            deadlines = [w.job[1] for w in busy.values()] + [w.started + STARTUP_TIMEOUT_S for w in starting.values()]
            ready = wait(list(busy) + list(starting), timeout=max(0.0, min(deadlines) - now))
            for conn in ready:
                if conn in starting:
                    w = starting.pop(conn)
                    try:
                        conn.recv()  # the ready message
                        w.ready = True
                        failed_starts = 0
                        idle.append(w)
                    except (EOFError, OSError):  # died while starting: start another, a few times
                        failed_starts += 1
                        if failed_starts >= START_TRIES:
                            raise WorkersDying(f"grader workers keep dying while starting ({failed_starts} in a row, "
                                               f"the last {_death(w)}; python -m drzero.grader.sandbox)") from None
                        fresh = self._replace(w)
                        starting[fresh.conn] = fresh
                    continue
                w = busy.pop(conn)
                try:
                    job_id, result = conn.recv()
                    results[job_id] = result
                    w.job = None
                    deaths = 0
                    idle.append(w)
                except (EOFError, OSError):  # died holding a job (killed, memory): the job goes to a fresh worker
                    job_id = w.job[0]
                    tries[job_id] += 1
                    deaths += 1
                    if tries[job_id] >= JOB_TRIES or deaths >= 2 * JOB_TRIES:
                        raise WorkersDying(f"grader workers keep dying: {deaths} in a row died holding a job, the "
                                           f"last {_death(w)}; stopping rather than giving an answer a wrong "
                                           "reward") from None
                    RETRIES[0] += 1
                    pending.append(job_id)
                    fresh = self._replace(w)
                    starting[fresh.conn] = fresh
            now = time.monotonic()
            for conn, w in list(busy.items()):
                if w.job[1] <= now:
                    busy.pop(conn)
                    fresh = self._replace(w)
                    starting[fresh.conn] = fresh
            for conn, w in list(starting.items()):
                if w.started + STARTUP_TIMEOUT_S <= now:
                    raise WorkersDying(f"a grader worker did not start within {STARTUP_TIMEOUT_S:.0f} s")
        return results

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
    """A process-wide pool of ``workers`` workers, started (and warming) on first use."""
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
