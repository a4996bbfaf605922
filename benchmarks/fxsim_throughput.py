"""fxsim throughput against the float reference, measured in one run on the same net and data.

    python benchmarks/fxsim_throughput.py [--model ann.onnx] [--dataset mnist5k] [--steps 16] [--repeat 3]

Without --model it trains a 784-340-10 MLP for 3 epochs first (not timed).  Prints samples per
second of fxsim (closed form with stepped fallback, the default), fxsim stepped (the neuron
program step by step), and the float64 reference, and the ratios; fxsim auto also with BLAS
threads left as configured (fxsim limits BLAS to one thread inside its run by default).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--arch", default="784-340-10")
    ap.add_argument("--profile", default="loihi2")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from snncompile.data import as_model_input, load_dataset
    from snncompile.frontends import load_model
    from snncompile.profile import load_profile
    from snncompile.quantize.ttfs import quantize_ttfs
    from snncompile.targets import run_target
    from snncompile.train.ann import build_ann, train_ann
    from snncompile.ttfs.convert import convert

    data = load_dataset(args.dataset)
    if args.model:
        model = load_model(args.model)
    else:
        model = build_ann(args.arch, seed=args.seed)
        train_ann(model, as_model_input(data.x_train, model.input_shape), data.y_train, epochs=3, seed=args.seed,
                  progress=False)
    x_train = as_model_input(data.x_train, model.input_shape)
    x = as_model_input(data.x_test, model.input_shape)
    prof = load_profile(args.profile)
    graph = convert(model, x_train)
    qgraph, _ = quantize_ttfs(graph, prof, args.steps, x_train)
    t_ref, r_ref = best_of(lambda: run_target("reference", graph, x), args.repeat)
    t_fx, r_fx = best_of(lambda: run_target("fxsim", qgraph, x, profile=prof), args.repeat)
    import snncompile.ttfs.fixed as fixed

    fixed.BLAS_THREADS = None  # the same run with BLAS threads as configured (OpenBLAS: one per core)
    t_fx_blas, _ = best_of(lambda: run_target("fxsim", qgraph, x, profile=prof), args.repeat)
    fixed.BLAS_THREADS = 1
    t_st, r_st = best_of(lambda: run_target("fxsim", qgraph, x, profile=prof, mode="stepped"), 1)
    assert np.array_equal(r_fx.raw_logits, r_st.raw_logits), "closed form and stepped program disagree"
    n = len(x)
    rows = [("reference (float64)", t_ref), ("fxsim (auto)", t_fx), ("fxsim (auto, BLAS threaded)", t_fx_blas),
            ("fxsim (stepped)", t_st)]
    print(f"{args.arch} on {args.dataset}, {n} test samples, K={args.steps}, profile {args.profile}, "
          f"best of {args.repeat}")
    print(f"{'target':<30}{'seconds':>10}{'samples/s':>12}{'vs reference':>14}")
    for name, t in rows:
        print(f"{name:<30}{t:>10.3f}{n / t:>12.0f}{t_ref / t:>13.2f}x")
    print(f"accuracy: reference {np.mean(r_ref.decisions == data.y_test):.4f}, "
          f"fxsim {np.mean(r_fx.decisions == data.y_test):.4f}")


if __name__ == "__main__":
    main()
