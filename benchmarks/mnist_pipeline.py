"""End-to-end numbers on MNIST-5k for the MLP and the CNN (issues: foundation, fxsim, Lava).

    python benchmarks/mnist_pipeline.py [--epochs 10] [--lava-samples 200] [--cnn-lava-samples 20]

For each network: trains it (seeded), converts it, reports ANN / reference accuracy, agreement,
the largest |(t_max - t_i) - clipped ReLU activation|, spikes per neuron, fxsim accuracy at 8-bit
weights for K = 4, 8, 16, 32 (and the smallest K within 1 point of the ANN), and Lava's
bit-exactness with fxsim on the first samples.  Every number printed is measured in this run.
"""

from __future__ import annotations

import argparse
import time

NETS = {"mlp": "784-340-10", "cnn": "1x28x28-c8k5p2-m2-c16k5-a2-64-10"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lava-samples", type=int, default=200)
    ap.add_argument("--cnn-lava-samples", type=int, default=20)
    ap.add_argument("--nets", default="mlp,cnn")
    args = ap.parse_args(argv)

    from snncompile.data import as_model_input, load_dataset
    from snncompile.pipeline import CompileOptions, compile_model
    from snncompile.train.ann import build_ann, train_ann

    data = load_dataset("mnist5k")
    for key in args.nets.split(","):
        arch = NETS[key]
        t0 = time.perf_counter()
        model = build_ann(arch, seed=args.seed)
        train_ann(model, as_model_input(data.x_train, model.input_shape), data.y_train, epochs=args.epochs,
                  seed=args.seed, progress=False)
        t_train = time.perf_counter() - t0
        lava_n = args.lava_samples if key == "mlp" else args.cnn_lava_samples
        res = compile_model(model, CompileOptions(dataset="mnist5k", targets=("reference", "fxsim", "lava"),
                                                   profile="loihi2", steps=16, vendor_samples=lava_n, progress=False,
                                                   sweep_bits=(8,), sweep_steps=(4, 8, 16, 32), seed=args.seed))
        r = res.report.data
        ann, ref, fx, lava = r["ann"], r["reference"], r["targets"]["fxsim"], r["targets"]["lava"]
        print(f"== {key} {arch}: trained {args.epochs} epochs in {t_train:.1f} s")
        print(f"ANN accuracy {100 * ann['accuracy']:.2f} %; reference {100 * ref['accuracy']:.2f} %, agreement "
              f"with ANN {ref['agreement_with_ann']:.4f}, max activation error {ref['max_activation_error']:.2e}, "
              f"spikes per neuron {ref['spikes_per_neuron']:.3f} (hidden only {ref['spikes_per_hidden_neuron']:.3f})")
        print(f"fxsim (loihi2, 8-bit, K=16) accuracy {100 * fx['accuracy']:.2f} %, spikes per neuron "
              f"{fx['spikes_per_neuron']:.3f}, energy {fx['energy']['nJ_per_sample_mean']:.0f} nJ/sample (estimate)")
        rows = r["sweep"]["results"]
        ok = [row["steps"] for row in rows if row["accuracy"] is not None and row["accuracy"] >= ann["accuracy"] - 0.01]
        print("fxsim 8-bit sweep: " + ", ".join(f"K={row['steps']}: {100 * row['accuracy']:.2f} %" for row in rows)
              + f"; smallest K within 1 point of the ANN: {min(ok) if ok else 'none'}")
        print(f"lava on {lava['samples']} samples: accuracy {100 * lava['accuracy']:.2f} % (fxsim on the same "
              f"samples {100 * lava['fxsim_accuracy_same_samples']:.2f} %), bit-exact with fxsim: "
              f"{lava['bit_exact_with_fxsim']}")
        print()


if __name__ == "__main__":
    main()
