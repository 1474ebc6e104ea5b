"""``drzero toy build --output DIR``: build a toy base model (by default the shipped toy-v2).

The config is ``drzero.config.ToyBuildConfig``, parsed like every other command's
(``parsing.parse_config``: defaults, ``--config FILE``, then flags)."""

from __future__ import annotations

USAGE = "usage: drzero toy build --output DIR [options]   (drzero toy build --help lists them)"


def main(argv: list[str]) -> int:
    from drzero import config, parsing
    from drzero.errors import DrZeroError

    if not argv or argv[0] in ("-h", "--help"):
        print("drzero toy: the toy world's tiny base models.\n" + USAGE)
        return 0
    if argv[0] != "build":
        raise DrZeroError(f"unknown toy command {argv[0]!r}; {USAGE}")
    cfg = parsing.parse_config(config.ToyBuildConfig, argv[1:], prog="drzero toy build")
    import torch

    from drzero.toy.build import build

    torch.set_num_threads(max(1, cfg.threads))
    build(cfg)
    return 0
