"""Grader workers that die (issue 34, item 3): a job whose worker dies under it is graded
again on a fresh worker (only a real timeout counts as one, reward 0); a worker that dies
while starting is replaced; workers that keep dying stop the caller with one line
(`WorkersDying`, a DrZeroError) instead of wrong rewards. Retries are counted
(`sandbox.RETRIES`, the `grader/retries` metric).

Deaths are injected from the parent: the worker is stopped (SIGSTOP) before a job is sent
and killed (SIGKILL) right after, so it dies holding the job every time.
"""

import os
import signal
import subprocess
import sys

import pytest

from drzero.errors import DrZeroError
from drzero.grader import Grader, sandbox

ANSWERS = [("so \\boxed{\\frac{1}{2}}", "0.5"), ("the answer is \\boxed{3}", "4"), ("\\boxed{x^2+2x+1}", "(x+1)^2")]
EXPECTED = [True, False, True]


@pytest.fixture
def pool(monkeypatch):
    """A fresh 1-worker pool (not the process-wide one), whose job sends can be made fatal."""
    init = sandbox._Worker.__init__

    def remember(self):
        init(self)
        self.duplex.proc = self.proc

    monkeypatch.setattr(sandbox._Worker, "__init__", remember)
    p = sandbox.WorkerPool(1)
    yield p
    p.close()


def _kill_under_jobs(monkeypatch, n: int) -> list:
    """The next ``n`` job sends kill their worker while it holds the job."""
    send, killed = sandbox._Duplex.send, []

    def fatal(self, obj):
        if obj is not None and len(killed) < n:
            os.kill(self.proc.pid, signal.SIGSTOP)
            send(self, obj)
            os.kill(self.proc.pid, signal.SIGKILL)
            killed.append(obj[0])
            return
        send(self, obj)

    monkeypatch.setattr(sandbox._Duplex, "send", fatal)
    return killed


def _grade(pool, answers=ANSWERS):
    args = [(r, ref, "auto", 5.0) for r, ref in answers]
    return [g.correct if g is not None else None for g in pool.map("drzero", args, 5.0)]


def test_a_job_whose_worker_dies_is_graded_again_not_timed_out(pool, monkeypatch):
    before = sandbox.RETRIES[0]
    killed = _kill_under_jobs(monkeypatch, 2)
    assert _grade(pool) == EXPECTED  # not None: the answers got their true verdicts
    assert len(killed) == 2 and sandbox.RETRIES[0] - before == 2


def test_workers_that_keep_dying_stop_with_one_line(pool, monkeypatch):
    _kill_under_jobs(monkeypatch, 100)
    with pytest.raises(DrZeroError, match=r"grader workers keep dying: 3 in a row died holding a job, the last "
                                          r"killed by SIGKILL; stopping rather than giving an answer a wrong reward"):
        _grade(pool)


def _failing_starts(monkeypatch, n: int) -> None:
    """The next ``n`` workers exit at once instead of starting."""
    popen, failed = subprocess.Popen, []

    def maybe_dead(cmd, **kw):
        if len(failed) < n and cmd[1:3] == ["-m", "drzero.grader.sandbox"]:
            failed.append(cmd)
            cmd = [sys.executable, "-c", "pass"]
        return popen(cmd, **kw)

    monkeypatch.setattr(sandbox.subprocess, "Popen", maybe_dead)


def test_a_worker_dying_while_starting_is_replaced(monkeypatch):
    _failing_starts(monkeypatch, 1)
    p = sandbox.WorkerPool(1)
    try:
        assert _grade(p) == EXPECTED
    finally:
        p.close()


def test_workers_that_keep_dying_while_starting_stop_with_one_line(monkeypatch):
    _failing_starts(monkeypatch, 100)
    p = sandbox.WorkerPool(1)
    try:
        with pytest.raises(DrZeroError, match=r"grader workers keep dying while starting \(3 in a row, the last exit "
                                              r"code 0"):
            _grade(p)
    finally:
        p.close()


def test_only_a_real_timeout_counts_as_one(monkeypatch):
    """Through the Grader (as train and eval call it): a killed worker's answer is graded."""
    monkeypatch.setattr(sandbox, "_POOLS", {})
    init = sandbox._Worker.__init__

    def remember(self):
        init(self)
        self.duplex.proc = self.proc

    monkeypatch.setattr(sandbox._Worker, "__init__", remember)
    _kill_under_jobs(monkeypatch, 1)
    try:
        grades = Grader(workers=1, timeout_s=5.0)([r for r, _ in ANSWERS], [ref for _, ref in ANSWERS], "auto")
        assert [g.correct for g in grades] == EXPECTED and not any(g.timed_out for g in grades)
    finally:
        for p in sandbox._POOLS.values():
            p.close()
