"""Where a ladder point's time goes, and how low drzero's step-time ratio could go there.

For each ``--point`` (``SIZE/LENGTH``, as in bench/ladder.py) and each side, one training
run of the ladder's workload (the same worker code: ``ladder.run_drzero`` / ``ladder.run_trl``)
runs under ``torch.profiler`` in its own process. Printed per side: the CPU time of the run
(its steps and its start-up), the CPU time inside the arithmetic kernels (matrix products
and fused attention, ``ARITHMETIC``) per step, and the top operators.

The floor: drzero cannot skip its own arithmetic, so at a point

    ratio >= drzero's arithmetic CPU seconds per step / TRL's step CPU seconds

with TRL's step CPU time taken from the ladder's results (``--ladder-json``, measured
without the profiler), and drzero's arithmetic per step = its profiled arithmetic over the
run / ``--steps`` (start-up does no arithmetic to speak of: it loads weights). Beside it,
the arithmetic share of drzero's own measured step. A floor above 0.5 would mean that no
change of drzero's bookkeeping reaches 0.5 at that point, only less arithmetic; a low floor
with a high ratio means the rest of the step (per-operator overhead, sampling, copies)
sets the ratio.

    python bench/ladder_profile.py --point toy/128 --point 150m/128
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ladder  # noqa: E402  (bench/ladder.py: the grid, the models and the workers)

ARITHMETIC = ("aten::mm", "aten::bmm", "aten::addmm", "aten::addmm_", "aten::baddbmm", "aten::addbmm",
              "aten::_scaled_dot_product_flash_attention_for_cpu",
              "aten::_scaled_dot_product_flash_attention_for_cpu_backward")


def profile_worker(args) -> None:
    """One run of ``args.worker``'s side under the profiler; writes ``profile.json``."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(1)
    out = Path(args.run_dir)
    worker = ladder.run_drzero if args.worker == "drzero" else ladder.run_trl
    c = time.process_time()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        record = worker(args, Path(args.model_path), out)
    cpu = time.process_time() - c
    ops = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}  # self CPU seconds per operator
    arithmetic = sum(ops.get(k, 0.0) for k in ARITHMETIC)
    (out / "profile.json").write_text(json.dumps({"cpu_s": cpu, "arithmetic_s": arithmetic, "ops": sorted(
        ops.items(), key=lambda kv: -kv[1]), "steps": record["steps"]}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--point", action="append", required=True, help="SIZE/LENGTH, e.g. toy/128 (repeatable)")
    ap.add_argument("--ladder-json", default=str(ladder.ROOT / "bench" / "ladder.json"),
                    help="the ladder's results: the unprofiled step CPU times the floor divides")
    ap.add_argument("--models", default=str(Path(tempfile.gettempdir()) / "drzero-ladder-models"),
                    help="where the random-init model folders are (built once, as bench/ladder.py does)")
    ladder.add_workload_args(ap)
    args = ap.parse_args()
    if args.worker:
        profile_worker(args)
        return

    measured = json.loads(Path(args.ladder_json).read_text())["points"] if Path(args.ladder_json).exists() else {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.point:
            size, length = key.split("/")
            folder = ladder.model_folder(size, Path(args.models))
            arith = {}
            for side in ("drzero", "trl"):
                out = Path(tmp) / f"{side}-{size}-{length}"
                out.mkdir(parents=True)
                cmd = ladder.worker_command(__file__, args, side, folder, out, int(length)) + ["--point", key]
                done = subprocess.run(cmd, capture_output=True, text=True, env=ladder.WORKER_ENV)
                if done.returncode != 0:
                    sys.exit(f"{side} {key} failed:\n{(done.stdout + done.stderr)[-3000:]}")
                p = json.loads((out / "profile.json").read_text())
                arith[side] = p["arithmetic_s"] / args.steps  # CPU s per step
                top = ", ".join(f"{k.removeprefix('aten::')} {v / args.steps:.2f}" for k, v in p["ops"][:6])
                print(f"{key} {side:6s}: CPU {p['cpu_s']:7.2f} s under the profiler ({args.steps} steps and start-up); "
                      f"arithmetic {arith[side]:.2f} s a step; top self-CPU s a step: {top}", flush=True)
            rounds = measured.get(key, {}).get("rounds") or []
            if rounds:
                d, t = rounds[0]["drzero"]["cpu_s"], rounds[0]["trl"]["cpu_s"]
                row = (key, arith["drzero"] / d, arith["trl"] / t, d / t, arith["drzero"] / t)
                rows.append(row)
                print(f"{key}: measured CPU-time ratio {row[3]:.3f}; floor from drzero's arithmetic alone {row[4]:.3f}",
                      flush=True)
    if rows:
        print("\n| point | arithmetic share of the step, drzero | the same, TRL | CPU-time ratio | floor |")
        print("|---|---|---|---|---|")
        for key, a, b, r, f in rows:
            print(f"| {key} | {a:.0%} | {b:.0%} | {r:.3f} | {f:.3f} |")


if __name__ == "__main__":
    main()
