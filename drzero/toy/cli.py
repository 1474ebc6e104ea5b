"""``drzero toy build --output DIR``: rebuild the toy base model deterministically."""

from __future__ import annotations

import argparse

import torch


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="drzero toy", description="The toy world: a tiny base model and synthetic task.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="pretrain the toy base model from scratch and write its model card")
    b.add_argument("--output", required=True, help="checkpoint folder to write (Hugging Face format)")
    b.add_argument("--seed", type=int, default=0, help="seed for corpus, initialisation and batches")
    b.add_argument("--steps", type=int, default=None, help="pretraining steps (default: the shipped model's)")
    b.add_argument("--no-card", action="store_true", help="skip measuring the model card")
    args = ap.parse_args(argv)
    from drzero.toy.build import BuildConfig, build

    torch.set_num_threads(min(2, torch.get_num_threads()))
    cfg = BuildConfig(output=args.output, seed=args.seed, card=not args.no_card)
    if args.steps:
        cfg.steps = args.steps
    build(cfg)
    return 0
