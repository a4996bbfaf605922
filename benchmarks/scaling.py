"""fxsim against the float reference and Lava on three nets, and a sweep serial vs on Ray, measured
in one run.

    python benchmarks/scaling.py [--epochs 2] [--samples 1000] [--lava-samples 20] [--steps 16]
                                 [--nets mlp,cnn,large] [--sweep-net cnn] [--sweep-workers 2] [--no-ray]
                                 [--seed 0]

Nets (trained on mnist5k for --epochs epochs first, not timed): mlp 784-340-10, cnn
1x28x28-c8k5p2-m2-c16k5-a2-64-10, large 784-1000-1000-10.  For each: samples/s of the float64
reference, fxsim auto (closed form, stepped fallback) and fxsim stepped (the neuron program step
by step) on --samples test samples (best of --repeat ``run_seconds``, as report.json records them), and Lava on the first --lava-samples (one
run; its own build + run + read-back time, without its fxsim comparison); the ratios fxsim /
reference and fxsim / Lava per sample; exits 1 if fxsim auto, fxsim stepped or Lava disagree.
Then the TTFS sweep (bits 2,4,8 x K 4,8,16 on --sweep-net, default the CNN) serially and as Ray
tasks on a local Ray with --sweep-workers CPUs: wall times (ray.init apart) and whether the tables
are equal.  Last, an evaluation of --shard-samples samples (the test split repeated) on the sweep net:
the reference and fxsim in one run, then in shards of 2,500 as Ray tasks (``--ray`` on a compile of
10,000 samples or more); wall times and whether the results are equal.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

NETS = {"mlp": "784-340-10", "cnn": "1x28x28-c8k5p2-m2-c16k5-a2-64-10", "large": "784-1000-1000-10"}


def best_of(fn, repeat: int):
    """(best ``run_seconds`` of ``repeat`` runs, the last run): each target's own time, as report.json
    records it (inputs are encoded once by the pipeline, before any target runs)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        out = fn()
        best = min(best, out.run_seconds)
    return best, out


def bench_net(key, args, data, prof):
    from snncompile.data import as_model_input
    from snncompile.quantize.ttfs import quantize_ttfs
    from snncompile.targets import run_target
    from snncompile.train.ann import build_ann, train_ann
    from snncompile.ttfs.convert import convert

    model = build_ann(NETS[key], seed=args.seed)
    x_train = as_model_input(data.x_train, model.input_shape)
    t0 = time.perf_counter()
    train_ann(model, x_train, data.y_train, epochs=args.epochs, seed=args.seed, progress=False)
    t_train = time.perf_counter() - t0
    x = as_model_input(data.x_test, model.input_shape)[:args.samples]
    y = data.y_test[:args.samples]
    graph = convert(model, x_train)
    qgraph, _ = quantize_ttfs(graph, prof, args.steps, x_train[:args.calib_samples])
    n = len(x)
    run_target("fxsim", qgraph, x[:4], profile=prof)  # warm-up: imports, cached linear maps
    run_target("reference", graph, x[:4])
    t_ref, r_ref = best_of(lambda: run_target("reference", graph, x), args.repeat)
    t_fx, r_fx = best_of(lambda: run_target("fxsim", qgraph, x, profile=prof), args.repeat)
    t_st, r_st = best_of(lambda: run_target("fxsim", qgraph, x, profile=prof, mode="stepped"), 1)
    ok = bool(np.array_equal(r_fx.raw_logits, r_st.raw_logits))
    row = {"net": key, "arch": NETS[key], "train_seconds": t_train, "samples": n,
           "accuracy_reference": float(np.mean(r_ref.decisions == y)),
           "accuracy_fxsim": float(np.mean(r_fx.decisions == y)),
           "reference": n / t_ref, "fxsim": n / t_fx, "fxsim_stepped": n / t_st, "auto_equals_stepped": ok}
    if args.lava_samples:
        from snncompile.targets.lava.compat import require_lava

        require_lava()
        import snncompile.targets.lava.ttfs_runtime  # noqa: F401  (import time is not timed)

        m = min(args.lava_samples, n)
        r_lava = run_target("lava", qgraph, x[:m], profile=prof)
        row["lava"] = m / r_lava.run_seconds
        row["lava_samples"] = m
        row["lava_bit_exact"] = bool(r_lava.info["bit_exact_with_fxsim"]) and bool(
            np.array_equal(r_lava.raw_logits, r_fx.raw_logits[:m]))
    return row


def bench_sweep(args):
    """The same sweep serially and on Ray (a local runtime with --sweep-workers CPUs, started here so its
    start-up time is reported apart); (seconds and tables)."""
    import tempfile
    from pathlib import Path

    from snncompile.data import as_model_input, load_dataset
    from snncompile.frontends.onnx import export_onnx
    from snncompile.pipeline import CompileOptions, compile_model
    from snncompile.scaleout import import_ray
    from snncompile.train.ann import build_ann, train_ann

    def opts(ray):
        return CompileOptions(dataset="mnist5k", targets=("reference",), samples=args.samples, seed=args.seed,
                              sweep_bits=(2, 4, 8), sweep_steps=(4, 8, 16), progress=False, ray=ray,
                              calib_samples=args.calib_samples)

    data = load_dataset("mnist5k")
    model = build_ann(NETS[args.sweep_net], seed=args.seed)
    train_ann(model, as_model_input(data.x_train, model.input_shape), data.y_train, epochs=args.epochs,
              seed=args.seed, progress=False)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(tmp) / "net.onnx"
        export_onnx(model, onnx)
        out["serial"] = compile_model(str(onnx), opts(False), out=Path(tmp) / "serial").report.data["sweep"]
        ray = import_ray()
        t0 = time.perf_counter()
        ray.init(num_cpus=args.sweep_workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        t_init = time.perf_counter() - t0
        try:
            out["ray"] = compile_model(str(onnx), opts(True), out=Path(tmp) / "ray").report.data["sweep"]
        finally:
            ray.shutdown()

    def strip(sw):
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in sw["results"]]

    return {"jobs": out["serial"]["jobs"], "serial": out["serial"]["wall_seconds"],
            "ray": out["ray"]["wall_seconds"], "ray_init": t_init, "equal": strip(out["serial"]) == strip(out["ray"])}


def bench_shards(args, data, prof):
    """fxsim and the float reference on --shard-samples samples (the test split repeated) in one run, then
    in shards of 2,500 as Ray tasks on --sweep-workers CPUs; (seconds, and whether the runs are equal)."""
    from snncompile.data import as_model_input
    from snncompile.encode import ttfs_counts
    from snncompile.quantize.ttfs import quantize_ttfs
    from snncompile.scaleout import ray_session
    from snncompile.targets import get_target
    from snncompile.targets.base import Inputs, RunRequest
    from snncompile.targets.shard import run_sharded
    from snncompile.train.ann import build_ann, train_ann
    from snncompile.ttfs.convert import convert

    model = build_ann(NETS[args.sweep_net], seed=args.seed)
    x_train = as_model_input(data.x_train, model.input_shape)
    train_ann(model, x_train, data.y_train, epochs=args.epochs, seed=args.seed, progress=False)
    x_test = as_model_input(data.x_test, model.input_shape)
    x = np.concatenate([x_test] * -(-args.shard_samples // len(x_test)))[:args.shard_samples]
    graph = convert(model, x_train)
    qgraph, _ = quantize_ttfs(graph, prof, args.steps, x_train[:args.calib_samples])
    inputs = Inputs(x, f"latency-{args.steps}", ttfs_counts(x, args.steps), args.steps)
    out = {}
    for name, g in (("reference", graph), ("fxsim", qgraph)):
        req = RunRequest(g, "ttfs", prof, inputs)
        one = get_target(name).run(req)
        with ray_session(num_cpus=args.sweep_workers):
            sharded = run_sharded(name, req, use_ray=True)
        out[name] = {"serial": one.run_seconds, "ray": sharded.run_seconds, "shards": sharded.info["shards"],
                     "equal": bool(np.array_equal(one.decisions, sharded.decisions)
                                   and (one.raw_logits is None or np.array_equal(one.raw_logits, sharded.raw_logits)))}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", default="mlp,cnn,large")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--calib-samples", type=int, default=2000)
    ap.add_argument("--lava-samples", type=int, default=20, help="0: no Lava")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", default="loihi2")
    ap.add_argument("--no-ray", action="store_true", help="skip the serial-vs-Ray sweep")
    ap.add_argument("--sweep-net", default="cnn", choices=sorted(NETS))
    ap.add_argument("--sweep-workers", type=int, default=2)
    ap.add_argument("--shard-samples", type=int, default=10_000, help="the sharded evaluation's size (0: skip it)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from snncompile.data import load_dataset
    from snncompile.profile import load_profile

    data = load_dataset("mnist5k")
    prof = load_profile(args.profile)
    rows = [bench_net(k.strip(), args, data, prof) for k in args.nets.split(",") if k.strip()]
    print(f"mnist5k, K={args.steps}, profile {args.profile}, nets trained {args.epochs} epochs; "
          f"samples/s (reference, fxsim: {args.samples} samples, best of {args.repeat}; "
          f"lava: {args.lava_samples} samples, one run)")
    head = f"{'net':<7}{'reference':>11}{'fxsim':>10}{'stepped':>10}{'lava':>8}{'fx/ref':>8}{'fx/lava':>10}" \
           f"{'acc ref':>9}{'acc fx':>8}  exact"
    print(head)
    ok = True
    for r in rows:
        lava = r.get("lava")
        exact = r["auto_equals_stepped"] and r.get("lava_bit_exact", True)
        ok &= exact
        lava_s = f"{lava:.1f}" if lava else "–"
        vs_lava = f"{r['fxsim'] / lava:.0f}x" if lava else "–"
        print(f"{r['net']:<7}{r['reference']:>11.0f}{r['fxsim']:>10.0f}{r['fxsim_stepped']:>10.0f}{lava_s:>8}"
              f"{r['fxsim'] / r['reference']:>7.2f}x{vs_lava:>10}{r['accuracy_reference']:>9.4f}"
              f"{r['accuracy_fxsim']:>8.4f}  {exact}")
    if not args.no_ray:
        s = bench_sweep(args)
        print(f"\nsweep ({args.sweep_net}, bits 2,4,8 x K 4,8,16 = {s['jobs']} jobs, {args.samples} samples): "
              f"serial {s['serial']:.1f} s; Ray with {args.sweep_workers} workers {s['ray']:.1f} s "
              f"({s['serial'] / s['ray']:.2f}x), plus ray.init {s['ray_init']:.1f} s; tables equal: {s['equal']}")
        ok &= s["equal"]
    if not args.no_ray and args.shard_samples:
        sh = bench_shards(args, data, prof)
        for name, r in sh.items():
            print(f"evaluation of {args.shard_samples:,} samples ({args.sweep_net}, {name}): one run {r['serial']:.1f} s; "
                  f"{r['shards']} shards on Ray with {args.sweep_workers} workers {r['ray']:.1f} s "
                  f"({r['serial'] / r['ray']:.2f}x); decisions{' and integer readouts' if name == 'fxsim' else ''} "
                  f"equal: {r['equal']}")
            ok &= r["equal"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
