"""netx (lava-dl's loader on Lava) against fxsim: speed and bit-exactness on the same net and samples,
measured in one run.

    python benchmarks/netx_vs_fxsim.py [--source slayer|chain] [--samples 50] [--steps 32]
                                       [--hidden 32] [--dataset digits] [--seed 0]

``--source slayer``: a 64-H-10 network of SLAYER ``block.cuba.Dense`` blocks (random weights, one
forward pass) exported with ``export_hdf5`` and read by our netx frontend; ``--source chain``: a
float 64-H-10 LIF NIR graph quantized with the netx profile (weight_exp 0) and written with
``--emit netx``'s writer.  Inputs: the first --samples test images, rate-coded over --steps.
Times fxsim (plain, and recording every v and spike as the comparison needs; best of --repeat)
and the netx target (writes the .net, netx builds the network once, runs every sample with a
paused zero-state reset, reads every layer's v and spikes back; Lava's import not timed).
Prints seconds per sample and the ratios, and exits 1 unless netx and fxsim agree bit for bit.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(fn, repeat: int = 1):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def slayer_graph(hidden: int, seed: int, folder: Path):
    from snncompile.frontends.netx import read_netx
    from snncompile.targets.netx.compat import export_slayer_dense

    return read_netx(export_slayer_dense(folder / "slayer.net", (64, hidden, 10), seed=seed))


def chain_graph(hidden: int, seed: int, x_cal):
    import nir

    from snncompile.frontends.nir import read_spiking_graph
    from snncompile.profile import load_profile
    from snncompile.quantize.lif import quantize_lif
    from snncompile.targets.netx.write import NETX_PROFILE

    rng = np.random.default_rng(seed)
    A = np.array
    nodes = {"input": nir.Input(input_type={"input": A([64])}),
             "fc0": nir.Affine(weight=rng.normal(0.05, 0.4, (hidden, 64)), bias=np.zeros(hidden)),
             "lif0": nir.LIF(tau=A([4.0] * hidden), r=A([4.0] * hidden), v_leak=A([0.0] * hidden),
                             v_threshold=A([1.0] * hidden)),
             "fc1": nir.Affine(weight=rng.normal(0.05, 0.4, (10, hidden)), bias=np.zeros(10)),
             "lif1": nir.LIF(tau=A([4.0] * 10), r=A([4.0] * 10), v_leak=A([0.0] * 10), v_threshold=A([1.0] * 10)),
             "output": nir.Output(output_type={"output": A([10])})}
    edges = [("input", "fc0"), ("fc0", "lif0"), ("lif0", "fc1"), ("fc1", "lif1"), ("lif1", "output")]
    net = read_spiking_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    q, _ = quantize_lif(net, load_profile(NETX_PROFILE), x_cal)
    return q


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", choices=("slayer", "chain"), default="slayer")
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="fxsim timings: best of this many runs")
    args = ap.parse_args(argv)

    from snncompile.data import as_model_input, load_dataset
    from snncompile.encode import encode
    from snncompile.targets import get_target, run_target
    from snncompile.targets.netx.compat import require_netx

    data = load_dataset(args.dataset)
    x = as_model_input(np.asarray(data.x_test), (64,), data.name)[: args.samples]
    spikes = encode(x, args.steps, "rate", args.seed)
    with tempfile.TemporaryDirectory() as work:
        if args.source == "slayer":
            q = slayer_graph(args.hidden, args.seed, Path(work))
        else:
            x_cal = as_model_input(np.asarray(data.x_train[:200]), (64,), data.name)
            q = chain_graph(args.hidden, args.seed, encode(x_cal, args.steps, "rate", args.seed))
    fx, nx = get_target("fxsim"), get_target("netx")
    n = len(spikes)
    require_netx()  # Lava's import is not part of the timing
    run_target(fx, q, spikes=spikes[:2])  # warm-up
    t_fx, r_fx = timed(lambda: run_target(fx, q, spikes=spikes), args.repeat)
    t_rec, _ = timed(lambda: run_target(fx, q, spikes=spikes, record=True), args.repeat)
    _, r_nx = timed(lambda: run_target(nx, q, spikes=spikes))
    t_nx = r_nx.run_seconds
    exact = bool(r_nx.info["bit_exact_with_fxsim"])
    T = r_nx.info["t_total"]
    print(f"net: {args.source} 64-{args.hidden}-10, {n} {args.dataset} samples, rate code, {T} steps per sample")
    print(f"fxsim            {t_fx / n * 1e3:9.3f} ms/sample")
    print(f"fxsim (record)   {t_rec / n * 1e3:9.3f} ms/sample")
    print(f"netx on Lava     {t_nx / n * 1e3:9.3f} ms/sample  ({r_nx.info['builds']} build(s), "
          f"{t_nx / (n * T) * 1e3:.2f} ms per step)")
    print(f"ratio netx / fxsim: {t_nx / t_fx:.0f}x;  netx / fxsim (record): {t_nx / t_rec:.0f}x")
    print(f"decisions equal: {bool(np.array_equal(r_nx.decisions, r_fx.decisions))}; "
          f"bit-exact with fxsim (every spike, every v, every step): {exact}"
          + ("" if exact else f"; first mismatch {r_nx.info['first_mismatch']}"))
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
