"""Lava against fxsim: speed and bit-exactness on the same samples, measured in one run.

    python benchmarks/lava_vs_fxsim.py [--samples 200] [--steps 16] [--arch 784-340-10]
                                       [--dataset mnist5k] [--epochs 3] [--model ann.onnx]

Without --model it trains the --arch ANN for --epochs epochs first (not timed), converts it,
quantizes it for loihi2, then times on the first --samples test samples: fxsim (auto: closed
form with stepped fallback) and fxsim (stepped: the neuron program step by step, recording every
v as the comparison needs), best of --repeat runs each, and the Lava target (which builds the network, runs N * T steps and
reads every population's v and spikes back).  Prints seconds per sample and the ratios, and
exits 1 unless Lava and fxsim agree bit for bit (every spike step, every integer v at every step).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def timed(fn, repeat: int = 1):
    """(best ``run_seconds`` of ``repeat`` runs, the last run): every target's own time, as report.json
    records it (the inputs are encoded once, before any target runs, and are not part of it)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        out = fn()
        best = min(best, out.run_seconds)
    return best, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--arch", default="784-340-10")
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--model", default=None, help="an .onnx ReLU network instead of training --arch")
    ap.add_argument("--profile", default="loihi2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=None, help="samples per Lava run (default: the target's)")
    ap.add_argument("--repeat", type=int, default=10, help="fxsim timings: best of this many runs")
    args = ap.parse_args(argv)

    from snncompile.data import as_model_input, load_dataset
    from snncompile.frontends import load_model
    from snncompile.profile import load_profile
    from snncompile.quantize.ttfs import quantize_ttfs
    from snncompile.targets import get_target, run_target
    from snncompile.train.ann import build_ann, train_ann
    from snncompile.ttfs.convert import convert

    data = load_dataset(args.dataset)
    if args.model:
        model = load_model(args.model)
        what = args.model
    else:
        model = build_ann(args.arch, seed=args.seed)
        train_ann(model, as_model_input(data.x_train, model.input_shape), data.y_train, epochs=args.epochs,
                  seed=args.seed, progress=False)
        what = f"{args.arch} ({args.epochs} epochs)"
    x_train = as_model_input(data.x_train, model.input_shape)
    x = as_model_input(data.x_test, model.input_shape)[: args.samples]
    y = data.y_test[: args.samples]
    prof = load_profile(args.profile)
    qgraph, _ = quantize_ttfs(convert(model, x_train), prof, args.steps, x_train)
    fx, lava = get_target("fxsim"), get_target("lava")
    n = len(x)

    run_target(fx, qgraph, x[:2], profile=prof)  # warm-up (imports, first-call costs) for both fxsim modes
    from snncompile.targets.lava.compat import require_lava

    require_lava()  # Lava's import (about 1 s) is not part of the timing
    import snncompile.targets.lava.ttfs_runtime  # noqa: F401
    t_auto, r_auto = timed(lambda: run_target(fx, qgraph, x, profile=prof), args.repeat)
    t_step, r_step = timed(lambda: run_target(fx, qgraph, x, profile=prof, mode="stepped", record=True), args.repeat)
    opts = {} if args.batch is None else {"batch": args.batch}
    t_lava, r_lava = timed(lambda: run_target(lava, qgraph, x, profile=prof, **opts))  # build, run, read back
    info = r_lava.info
    exact = bool(info["bit_exact_with_fxsim"]) and np.array_equal(r_auto.raw_logits, r_lava.raw_logits)

    print(f"{what} on {args.dataset}: {n} test samples, K={args.steps}, T={info['t_total']} steps per sample, "
          f"profile {args.profile}, {info['builds']} Lava build(s)")
    print(f"seconds: each target's own run_seconds (as in report.json; inputs encoded once beforehand); fxsim: "
          f"best of {args.repeat} runs; lava: one run (build + run + read back, without its fxsim comparison)")
    print(f"{'target':<34}{'seconds':>10}{'s/sample':>12}{'lava / this':>13}")
    for name, t in (("fxsim (auto)", t_auto), ("fxsim (stepped, recording v)", t_step), ("lava", t_lava)):
        print(f"{name:<34}{t:>10.3f}{t / n:>12.5f}{t_lava / t:>12.1f}x")
    ls = info["lava_seconds"]
    steps = n * info["sample_period"]
    print(f"lava breakdown: build {ls['build']:.2f} s, run {ls['run']:.2f} s ({1e3 * ls['run'] / steps:.2f} ms "
          f"per step, {steps} steps), read back {ls['read']:.2f} s, compare with fxsim "
          f"{info['compare_seconds']:.2f} s")
    print(f"accuracy on these samples: fxsim {np.mean(r_auto.decisions == y):.4f}, "
          f"lava {np.mean(r_lava.decisions == y):.4f}")
    print(f"bit-exact Lava vs fxsim (spike steps and every-step v of every population): "
          f"{'yes' if exact else 'NO'} on {n} samples")
    if not exact:
        print(f"first mismatch: {info['first_mismatch']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
