"""fxsim (Xylo arithmetic) vs rockpool's XyloSim on the same quantized network and samples.

    python benchmarks/xylo_vs_fxsim.py [--epochs 20] [--arch 4-120-3] [--samples 500]

Trains a Yin-Yang LIF network with eRBP (or takes --model snn.nir), quantizes it for xylo-audio2,
runs the test samples on the float reference, fxsim and XyloSim, checks fxsim and XyloSim bit for
bit (every spike and state of every step) and prints samples/s and the ratio, all from one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--arch", default="4-120-3")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    from snncompile.data import load_dataset
    from snncompile.pipeline import CompileOptions, compile_model
    from snncompile.train.erbp_job import train_erbp_command

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            model = str(Path(tmp) / "snn.nir")
            _, lines = train_erbp_command(load_dataset("yinyang"), args.arch, args.epochs, 32, None, None, args.seed,
                                          model, preset=False)  # the rule's plain defaults, as measured below
            print("\n".join(lines))
        opts = CompileOptions(dataset="yinyang", targets=("reference", "fxsim", "xylosim"), profile="xylo-audio2",
                              samples=args.samples, seed=args.seed, progress=False)
        t0 = time.perf_counter()
        with threadpool_limits(1):  # small matrices: BLAS threads only add overhead on 2 cores
            res = compile_model(model, opts)
        print(f"compile + runs: {time.perf_counter() - t0:.1f} s")
    rep = res.report.data
    ref, fx, xs = rep["reference"], rep["targets"]["fxsim"], rep["targets"]["xylosim"]
    n = fx["samples"]
    print(f"{args.model or args.arch} on yinyang, {n} test samples, profile xylo-audio2")
    print(f"accuracy: float reference {100 * ref['accuracy']:.2f} %, fxsim (Xylo rules) {100 * fx['accuracy']:.2f} %, "
          f"XyloSim {100 * xs['accuracy']:.2f} %; spikes/neuron {ref['spikes_per_neuron']:.3f} (reference), "
          f"{fx['spikes_per_neuron']:.3f} (Xylo)")
    print(f"bit-exact fxsim vs XyloSim (spikes, Isyn, Isyn2, Vmem, every step): {xs['bit_exact_with_fxsim']}"
          + ("" if xs["bit_exact_with_fxsim"] else f"; first mismatch {xs['first_mismatch']}"))
    r_fx, r_xs = n / fx["run_seconds"], n / xs["run_seconds"]
    print(f"samples/s: fxsim {r_fx:,.0f}, XyloSim {r_xs:,.0f}; fxsim / XyloSim = {r_fx / r_xs:.1f}x")
    return 0 if xs["bit_exact_with_fxsim"] else 1


if __name__ == "__main__":
    sys.exit(main())
