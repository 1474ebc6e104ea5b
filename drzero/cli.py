"""The ``drzero`` command: train, eval, probe, report, toy build.

    drzero train [--config RECIPE.yaml] [--algo dr_grpo] [--max-steps 40] ...
    drzero eval --model toy --benchmarks math500 --limit 50 --output runs/eval
    drzero probe --model toy --output runs/probe
    drzero report RUN_DIR [RUN_DIR ...] --output runs/report
    drzero toy build --output DIR

``drzero <command> --help`` lists every option with its meaning.
"""

from __future__ import annotations

import os
import sys

USAGE = __doc__


def _tyro_cli(cls, default, args, prog):
    import tyro

    return tyro.cli(cls, default=default, args=args, prog=prog, description=cls.__doc__)


def _split_config_flag(argv: list[str]) -> tuple[str | None, list[str]]:
    """Pull ``--config PATH`` / ``--resume DIR`` out first: they decide the defaults."""
    config, rest, i = None, [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--config" and i + 1 < len(argv):
            config = argv[i + 1]
            i += 2
            continue
        if a.startswith("--config="):
            config = a.split("=", 1)[1]
            i += 1
            continue
        rest.append(a)
        i += 1
    return config, rest


def cmd_train(argv: list[str]) -> int:
    from drzero.config import TrainConfig, apply_overrides, load_yaml

    config_path, rest = _split_config_flag(argv)
    base = TrainConfig()
    resume = next((rest[i + 1] for i, a in enumerate(rest[:-1]) if a == "--resume"), None)
    if resume:  # start from the run's own resolved config, then the flags on top
        from pathlib import Path

        run_cfg = Path(resume) / "config.yaml"
        if not run_cfg.exists():
            from drzero.errors import DrZeroError

            raise DrZeroError(f"--resume {resume}: not a run directory (no config.yaml)")
        base = apply_overrides(TrainConfig, base, load_yaml(str(run_cfg)), str(run_cfg))
    if config_path:
        base = apply_overrides(TrainConfig, base, load_yaml(config_path), config_path)
    cfg = _tyro_cli(TrainConfig, base, rest, "drzero train")
    from drzero.train import train

    train(cfg)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    from drzero.errors import DrZeroError

    try:
        if command == "train":
            return cmd_train(rest)
        if command == "eval":
            from drzero.eval_cli import main as eval_main

            return eval_main(rest)
        if command == "probe":
            from drzero.probe import main as probe_main

            return probe_main(rest)
        if command == "report":
            from drzero.report import main as report_main

            return report_main(rest)
        if command == "toy":
            from drzero.toy.cli import main as toy_main

            return toy_main(rest)
        print(f"error: unknown command {command!r}\n{USAGE}", file=sys.stderr)
        return 2
    except DrZeroError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
