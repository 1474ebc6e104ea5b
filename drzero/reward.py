"""Your own reward function, next to or instead of the grader's verdict.

    drzero train --reward my_rewards:brevity                 # added to the grader's 0/1
    drzero train --reward ./rewards.py:format_bonus --reward-mode replace
    drzero eval  --reward my_rewards:brevity                 # reported as reward_mean

The function is named ``module:function`` (an importable module) or ``path/to/file.py:function``
and is called once per batch:

    def my_reward(responses: list[str], references: list, rows: list[dict]) -> list[float]

``responses[i]`` is the decoded response (stop string removed), ``references[i]`` the row's
answer (a string, or a list where any may match), ``rows[i]`` the whole question row (extra
columns of your dataset included). With ``--reward-mode add`` (default) the reward is grader
verdict (1 if correct and not truncated, else 0) plus yours; with ``replace`` it is yours
alone. Like TRL's ``reward_funcs`` and verl's ``custom_reward_function``.

The contract, checked on every call (``custom_rewards``), each breach one line that stops
the command: a list or tuple (or a 1-D numpy array / torch tensor) of exactly one real
number (int, float, bool) per response (a dict, a string, a generator, or items that are
strings are refused, not converted); every value finite and within ``REWARD_RANGE``,
[-10, 10], so that it cannot drown the grader's 0/1 verdict; an exception raised inside
is named. ``--reward-timeout-s S`` limits each call to S seconds (``with_timeout``).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import numbers
import sys
import threading
from pathlib import Path
from typing import Callable

from drzero.errors import DrZeroError

RewardFunction = Callable[[list, list, list], list]
REWARD_MODES = ("add", "replace")
REWARD_RANGE = (-10.0, 10.0)  # a reward outside is refused: the grader's verdict is 0 or 1


def load_reward_function(spec: str, timeout_s: float = 0.0) -> RewardFunction:
    """The function named by ``module:function`` or ``file.py:function`` (each call limited
    to ``timeout_s`` seconds when > 0, ``with_timeout``)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise DrZeroError(f"--reward {spec!r}: expected module:function or path/to/file.py:function")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).expanduser()
            if not path.is_file():
                raise DrZeroError(f"--reward {spec!r}: file {module_name} does not exist")
            loader_spec = importlib.util.spec_from_file_location(f"drzero_user_reward_{path.stem}", path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[loader_spec.name] = module
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except DrZeroError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's module failed to import: say which and why, in one line
        raise DrZeroError(f"--reward {spec!r}: cannot import {module_name} ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise DrZeroError(f"--reward {spec!r}: {module_name} has no function {attr!r}")
    return with_timeout(fn, timeout_s) if timeout_s > 0 else fn


def with_timeout(fn: RewardFunction, timeout_s: float) -> RewardFunction:
    """``fn`` with each call limited to ``timeout_s`` seconds: it runs on a helper thread,
    and a call past the limit is a one-line error (the thread cannot be stopped; the
    command ends)."""
    name = getattr(fn, "__name__", repr(fn))

    def limited(responses, references, rows):
        box: dict = {}

        def call():
            try:
                box["out"] = fn(responses, references, rows)
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                box["error"] = e

        thread = threading.Thread(target=call, name="drzero-reward", daemon=True)
        thread.start()
        thread.join(timeout_s)
        if thread.is_alive():
            raise DrZeroError(f"the reward function {name!r} took more than --reward-timeout-s {timeout_s:g} s on "
                              f"{len(responses)} responses")
        if "error" in box:
            raise box["error"]
        return box["out"]

    limited.__name__ = name
    return limited


def custom_rewards(fn: RewardFunction, responses: list[str], references: list, rows: list[dict]) -> list[float]:
    """Call the user's function and check what it returned: one finite float per response."""
    try:
        out = fn(responses, references, rows)
    except DrZeroError:  # --reward-timeout-s
        raise
    except Exception as e:  # noqa: BLE001 - a bug in user code: name it in one line rather than a traceback
        raise DrZeroError(f"the reward function {getattr(fn, '__name__', fn)!r} raised {type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}") from None
    name = getattr(fn, "__name__", fn)
    if hasattr(out, "tolist") and not isinstance(out, (str, bytes)):  # a numpy array or a torch tensor
        out = out.tolist()
    if not isinstance(out, (list, tuple)):  # a dict (its keys), a string (its characters), a generator, ...
        raise DrZeroError(f"the reward function {name!r} must return a list of numbers, one per response; it "
                          f"returned a {type(out).__name__}")
    for i, v in enumerate(out):
        if not isinstance(v, numbers.Real):  # "0.5" is no reward: a str is refused, not converted
            raise DrZeroError(f"the reward function {name!r} must return a list of numbers; item {i} is "
                              f"{str(v)[:40]!r}, a {type(v).__name__}")
    values = [float(v) for v in out]
    if len(values) != len(responses):
        raise DrZeroError(f"the reward function {name!r} returned {len(values)} rewards "
                          f"for {len(responses)} responses")
    if not all(math.isfinite(v) for v in values):
        raise DrZeroError(f"the reward function {name!r} returned a NaN or infinite reward")
    low, high = REWARD_RANGE
    bad = next((v for v in values if not low <= v <= high), None)
    if bad is not None:  # 1e30 would drown the grader's 0/1 verdict (and the advantages' scale)
        raise DrZeroError(f"the reward function {name!r} returned {bad:g}, outside the accepted range "
                          f"[{low:g}, {high:g}] (the grader's verdict is 0 or 1)")
    return values
