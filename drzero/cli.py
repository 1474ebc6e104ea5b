"""The ``drzero`` command: train, eval, probe, report, simulate, toy build.

    drzero train [--config RECIPE.yaml] [--algo dr_grpo] [--max-steps 40] ...
    drzero eval --model toy --benchmarks math500 --limit 50 --output runs/eval
    drzero probe --model toy --output runs/probe
    drzero report RUN_DIR [RUN_DIR ...] --output runs/report
    drzero simulate --output runs/simulate
    drzero push RUN_DIR --repo-id ORG/NAME [--step N]
    drzero toy build --output DIR

``drzero <command> --help`` lists every option with its meaning; every command accepts
``--config FILE.yaml`` for its defaults. ``python -m drzero`` is the same program.
"""

from __future__ import annotations

import os
import sys

USAGE = __doc__


def _run_train(cfg) -> None:
    from drzero.train import train

    train(cfg)


def _run_eval(cfg) -> None:
    from drzero.evaluate import run_eval

    run_eval(cfg)


def _run_probe(cfg) -> None:
    from drzero.probe import run_probe

    run_probe(cfg)


def _run_report(cfg) -> None:
    from drzero.report import run_report

    run_report(cfg)


def _run_simulate(cfg) -> None:
    from drzero.simulate import simulate_command

    simulate_command(cfg)
def _run_push(cfg) -> None:
    from drzero.push import run_push

    run_push(cfg)


def _commands() -> dict:
    """command -> (config dataclass, what runs it)."""
    from drzero import config

    return {
        "train": (config.TrainConfig, _run_train),
        "eval": (config.EvalConfig, _run_eval),
        "probe": (config.ProbeConfig, _run_probe),
        "report": (config.ReportConfig, _run_report),
        "simulate": (config.SimulateConfig, _run_simulate),
        "push": (config.PushConfig, _run_push),
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    from drzero.errors import DrZeroError

    try:
        if command == "toy":
            from drzero.toy.cli import main as toy_main

            return toy_main(rest)
        commands = _commands()
        if command not in commands:
            print(f"error: unknown command {command!r}\n{USAGE}", file=sys.stderr)
            return 2
        from drzero.config import parse_config

        cls, run = commands[command]
        run(parse_config(cls, rest, prog=f"drzero {command}"))
        return 0
    except DrZeroError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
