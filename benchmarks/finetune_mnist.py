"""QAT and hardware-in-the-loop fine-tuning on MNIST-5k (issue: fine-tuning), measured in one run.

    python benchmarks/finetune_mnist.py [--bits 2,3,4] [--steps 8] [--qat-epochs 5] [--hil-epochs 2]
                                         [--penalty 0.5] [--penalty-bits 8] [--penalty-steps 16]

Trains the 784-340-10 ANN (10 epochs, seed 0), converts it, and for each weight width reports the
fxsim test accuracy (loihi2 profile, K steps) before fine-tuning (max-abs and MSE weight scales),
after QAT, and after HIL on fxsim.  Then QAT with a spike penalty at --penalty-bits/--penalty-steps:
spikes per hidden neuron and accuracy before and after.  The test split is only measured.
"""

from __future__ import annotations

import argparse
import time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bits", default="2,3,4")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--qat-epochs", type=int, default=5)
    ap.add_argument("--hil-epochs", type=int, default=2)
    ap.add_argument("--penalty", type=float, default=1.5)
    ap.add_argument("--penalty-bits", type=int, default=8)
    ap.add_argument("--penalty-steps", type=int, default=16)
    ap.add_argument("--penalty-epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from snncompile.data import as_model_input, load_dataset
    from snncompile.profile import load_profile
    from snncompile.train.ann import build_ann, evaluate_ann, train_ann
    from snncompile.train.finetune import evaluate_on_target, finetune
    from snncompile.ttfs.convert import convert

    data = load_dataset("mnist5k")
    model = build_ann("784-340-10", seed=args.seed)
    x = as_model_input(data.x_train, model.input_shape)
    xt = as_model_input(data.x_test, model.input_shape)
    train_ann(model, x, data.y_train, epochs=10, seed=args.seed, progress=False)
    ann = float((evaluate_ann(model, xt).argmax(1) == data.y_test).mean())
    graph = convert(model, x)
    calib = x[:1000]
    print(f"ANN test accuracy {100 * ann:.2f} %")
    print(f"{'bits':>4} {'K':>3} {'before(max)':>12} {'before(mse)':>12} {'QAT':>8} {'HIL':>8} {'QAT s':>6} {'HIL s':>6}")
    for bits in [int(b) for b in args.bits.split(",")]:
        prof = load_profile("loihi2").with_weight_bits(bits)
        before_max, _ = evaluate_on_target(graph, prof, args.steps, calib, xt, data.y_test)
        from snncompile.train.finetune import TtfsModule

        mod = TtfsModule(graph)
        mod.fix_scales(prof, "mse")
        before_mse, _ = evaluate_on_target(mod.to_graph(), prof, args.steps, calib, xt, data.y_test)
        lr = 1e-3 if bits <= 3 else 1e-4
        t0 = time.perf_counter()
        qat = finetune(graph, x, data.y_train, profile=prof, steps=args.steps, x_monitor=xt, y_monitor=data.y_test,
                       mode="qat", epochs=args.qat_epochs, lr=lr, scale_policy="mse", seed=args.seed, progress=False)
        t_qat = time.perf_counter() - t0
        acc_qat, _ = evaluate_on_target(qat.graph, prof, args.steps, calib, xt, data.y_test)
        t0 = time.perf_counter()
        hil = finetune(qat.graph, x, data.y_train, profile=prof, steps=args.steps, x_monitor=xt,
                       y_monitor=data.y_test, mode="hil", target="fxsim", epochs=args.hil_epochs, lr=lr / 3,
                       seed=args.seed, progress=False)
        t_hil = time.perf_counter() - t0
        acc_hil, _ = evaluate_on_target(hil.graph, prof, args.steps, calib, xt, data.y_test)
        print(f"{bits:>4} {args.steps:>3} {100 * before_max:>11.2f}% {100 * before_mse:>11.2f}% {100 * acc_qat:>7.2f}% "
              f"{100 * acc_hil:>7.2f}% {t_qat:>6.0f} {t_hil:>6.0f}")
    prof = load_profile("loihi2").with_weight_bits(args.penalty_bits)
    acc0, spn0 = evaluate_on_target(graph, prof, args.penalty_steps, calib, xt, data.y_test)
    pen = finetune(graph, x, data.y_train, profile=prof, steps=args.penalty_steps, x_monitor=xt, y_monitor=data.y_test,
                   mode="qat", epochs=args.penalty_epochs, lr=1e-4, spike_penalty=args.penalty, seed=args.seed,
                   progress=False)
    acc1, spn1 = evaluate_on_target(pen.graph, prof, args.penalty_steps, calib, xt, data.y_test)
    print(f"spike penalty {args.penalty} ({args.penalty_bits}-bit, K={args.penalty_steps}): spikes per hidden neuron "
          f"{spn0:.3f} -> {spn1:.3f}, fxsim accuracy {100 * acc0:.2f} % -> {100 * acc1:.2f} %")


if __name__ == "__main__":
    main()
