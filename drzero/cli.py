"""The ``drzero`` command: train, eval, probe, report, simulate, push, plan, pilot, toy build.

    drzero train [--config RECIPE.yaml] [--algo dr_grpo] [--max-steps 40] ...
    drzero eval --model toy --benchmarks math500 --limit 50 --output runs/eval
    drzero probe --model toy --output runs/probe
    drzero report RUN_DIR [RUN_DIR ...] --output runs/report
    drzero simulate --output runs/simulate
    drzero push RUN_DIR --repo-id ORG/NAME [--step N]
    drzero plan --config RECIPE [--gpus 8] [--gpu A100-40G|A100-80G|H100-80G|H200|cpu]
    drzero pilot --model toy-v2 --budget 15m --output runs/pilot
    drzero toy build --output DIR

``drzero <command> --help`` lists every option with its meaning; every command accepts
``--config FILE.yaml`` for its defaults. ``python -m drzero`` is the same program.
"""

from __future__ import annotations

import os
import sys

USAGE = __doc__


# command -> (its config dataclass in drzero.config, the function that runs it). The modules
# are imported only when their command runs: `drzero eval --help` does not load the trainer.
COMMANDS = {
    "train": ("TrainConfig", "drzero.train:train"),
    "eval": ("EvalConfig", "drzero.evaluate:run_eval"),
    "probe": ("ProbeConfig", "drzero.probe:run_probe"),
    "report": ("ReportConfig", "drzero.report:run_report"),
    "simulate": ("SimulateConfig", "drzero.simulate:simulate_command"),
    "push": ("PushConfig", "drzero.push:run_push"),
    "plan": ("PlanConfig", "drzero.plan:run_plan"),
    "pilot": ("PilotConfig", "drzero.pilot:run_pilot"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    from drzero.errors import DrZeroError
    from drzero.signals import Interrupted

    try:
        if command == "toy":
            from drzero.toy.cli import main as toy_main

            return toy_main(rest)
        if command not in COMMANDS:
            print(f"error: unknown command {command!r}\n{USAGE}", file=sys.stderr)
            return 2
        import importlib

        from drzero import config, parsing

        config_name, target = COMMANDS[command]
        cls = getattr(config, config_name)
        module, function = target.split(":")
        cfg = parsing.parse_config(cls, rest, prog=f"drzero {command}")
        getattr(importlib.import_module(module), function)(cfg)
        return 0
    except DrZeroError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:  # a signal stopped the command after it kept its work (drzero.signals)
        print(e, file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
