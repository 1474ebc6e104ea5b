"""Preemption: what ``drzero train`` and ``drzero eval`` do on SIGTERM, SIGUSR1 and SIGINT.

SLURM and Kubernetes stop a job with SIGTERM (SLURM's ``--signal`` sends SIGUSR1 first,
ahead of its time limit); a terminal sends SIGINT. ``Preemption`` turns the first of them
into a request to stop at the next safe point, which the caller polls (``requested``) or
which interrupts a region the caller marked ``abandonable`` (raising ``Abandon`` there,
where nothing has been changed yet that a checkpoint would need). A second signal exits at
once, with the signal's default action. The handlers are installed only in the main
thread (Python runs handlers there and nowhere else); elsewhere ``Preemption`` does nothing.

``Interrupted`` is what the command raises once it has kept what it finished: the CLI
prints its message (one line) and exits with ``code``, 128 + the signal's number as
shells do (130 for SIGINT, 143 for SIGTERM, 138 for SIGUSR1 on Linux).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGINT") if hasattr(signal, name))


class Interrupted(Exception):
    """A command stopped by a signal after keeping its finished work: ``str(e)`` is the one
    line to print, ``code`` the exit status."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class Abandon(BaseException):
    """Raised inside an ``abandonable`` region when a stop is requested (a BaseException, so
    code that catches Exception does not swallow it)."""


def name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_code(signum: int) -> int:
    return 128 + signum


class Preemption:
    """``with Preemption() as stop:`` the first SIGTERM/SIGUSR1/SIGINT sets
    ``stop.signum`` (and raises ``Abandon`` inside ``stop.abandonable()``); a second one
    kills the process at once. The previous handlers come back on exit."""

    def __init__(self, notice: str | None = "{signal} received: stopping at the next safe point "
                                             "(send it again to stop at once)"):
        self.signum: int | None = None
        self.notice = notice
        self._abandonable = 0
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> "Preemption":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # the second signal: no more waiting
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        if self.notice:
            try:
                os.write(1, (self.notice.format(signal=name(signum)) + "\n").encode())
            except OSError:
                pass
        if self._abandonable:
            raise Abandon()

    @contextlib.contextmanager
    def abandonable(self):
        """A region that may be given up half-way when a stop is requested (at once if one
        already was)."""
        if self.signum is not None:
            raise Abandon()
        self._abandonable += 1
        try:
            yield
        finally:
            self._abandonable -= 1
