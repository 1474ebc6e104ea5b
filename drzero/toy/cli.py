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
    b.add_argument("--threads", type=int, default=2,
                   help="CPU threads (the shipped build used 1: on a busy 2-core machine one thread is faster)")
    b.add_argument("--init", default=None,
                   help="continue pretraining this checkpoint (e.g. toy) on the v2 corpus instead of starting from scratch")
    b.add_argument("--packed", action="store_true", help="random packed blocks of --block-size tokens (the v1 build's batches)")
    b.add_argument("--block-size", type=int, default=None)
    b.add_argument("--batch-size", type=int, default=None)
    b.add_argument("--lr", type=float, default=None)
    args = ap.parse_args(argv)
    from drzero.toy.build import BuildConfig, build

    torch.set_num_threads(max(1, args.threads))
    cfg = BuildConfig(output=args.output, seed=args.seed, card=not args.no_card)
    if args.steps:
        cfg.steps = args.steps
    cfg.init, cfg.packed = args.init, args.packed
    for key in ("block_size", "batch_size", "lr"):
        if getattr(args, key) is not None:
            setattr(cfg, key, getattr(args, key))
    build(cfg)
    return 0
