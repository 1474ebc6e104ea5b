"""Your own reward function, next to or instead of the grader's verdict.

    drzero train --reward my_rewards:brevity                 # added to the grader's 0/1
    drzero train --reward ./rewards.py:format_bonus --reward-mode replace
    drzero eval  --reward my_rewards:brevity                 # reported as reward_mean

The function is named ``module:function`` (an importable module) or ``path/to/file.py:function``
and is called once per batch:

    def my_reward(responses: list[str], references: list, rows: list[dict]) -> list[float]

``responses[i]`` is the decoded response (stop string removed), ``references[i]`` the row's
answer (a string, or a list where any may match), ``rows[i]`` the whole question row (extra
columns of your dataset included). It returns one finite float per response. With
``--reward-mode add`` (default) the reward is grader verdict (1 if correct and not truncated,
else 0) plus yours; with ``replace`` it is yours alone. Like TRL's ``reward_funcs`` and verl's
``custom_reward_function``.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from pathlib import Path
from typing import Callable

from drzero.errors import DrZeroError

RewardFunction = Callable[[list, list, list], list]
REWARD_MODES = ("add", "replace")


def load_reward_function(spec: str) -> RewardFunction:
    """The function named by ``module:function`` or ``file.py:function``."""
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
    return fn


def custom_rewards(fn: RewardFunction, responses: list[str], references: list, rows: list[dict]) -> list[float]:
    """Call the user's function and check what it returned: one finite float per response."""
    try:
        out = fn(responses, references, rows)
    except Exception as e:  # noqa: BLE001 - a bug in user code: name it in one line rather than a traceback
        raise DrZeroError(f"the reward function {getattr(fn, '__name__', fn)!r} raised {type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}") from None
    try:
        values = [float(v) for v in out]
    except (TypeError, ValueError):
        raise DrZeroError(f"the reward function {getattr(fn, '__name__', fn)!r} must return a list of numbers") from None
    if len(values) != len(responses):
        raise DrZeroError(f"the reward function {getattr(fn, '__name__', fn)!r} returned {len(values)} rewards "
                          f"for {len(responses)} responses")
    if not all(math.isfinite(v) for v in values):
        raise DrZeroError(f"the reward function {getattr(fn, '__name__', fn)!r} returned a NaN or infinite reward")
    return values
