"""TTFS fine-tuning on MNIST-5k 784-340-10 (issue 15), measured in one run; the test split is only measured.

    python benchmarks/finetune_mnist.py [--points 2x4,3x8,4x8] [--budget 0.1] [--options] [--seed 0]

Trains the ANN (10 epochs, seed 0) and converts it.  Then, on fxsim (loihi2 profile, 1,000 test samples):

1. default options (``--points`` BITSxK): accuracy before fine-tuning with max-abs and with the
   default ("auto") weight scales, after QAT and after HIL on fxsim, each with the options the rule
   chose (snncompile/train/finetune_auto.py);
2. ``--spike-budget`` (8-bit, K = 16): the searched penalty, test accuracy and spikes per hidden neuron;
3. ``--options``: the 0.3-spikes paper's features at 8-bit weights: spike-time noise, the
   adaptive window (F = 10 and 1), quantile windows at K = 16 and at K = 4 (latency), against plain QAT.
"""

from __future__ import annotations

import argparse
import time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", default="2x4,3x8,4x8", help="comma-separated BITSxK points for the defaults")
    ap.add_argument("--budget", type=float, default=0.1, help="spikes per hidden neuron (0: skip)")
    ap.add_argument("--options", action="store_true", help="also measure noise, adaptive and quantile windows")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    from snncompile.data import as_model_input, load_dataset
    from snncompile.profile import load_profile
    from snncompile.train.ann import build_ann, evaluate_ann, train_ann
    from snncompile.train.finetune import TtfsModule, evaluate_on_target, finetune, finetune_spike_budget
    from snncompile.train.finetune_loop import latency_steps

    torch.set_num_threads(1)
    data = load_dataset("mnist5k")
    model = build_ann("784-340-10", seed=args.seed)
    x = as_model_input(data.x_train, model.input_shape)
    xt, yt = as_model_input(data.x_test, model.input_shape), data.y_test
    train_ann(model, x, data.y_train, epochs=10, seed=args.seed, progress=False)
    ann = float((evaluate_ann(model, xt).argmax(1) == yt).mean())
    graph = convert_model(model, x)
    calib = x[:1000]
    print(f"ANN test accuracy {100 * ann:.2f} % ({len(xt)} test samples)\n")

    def pct(v):
        return f"{100 * v:.2f} %"

    print("1. default options: fxsim test accuracy")
    print("| bits | K | before (max-abs) | before (auto) | QAT | HIL | QAT options (auto) | QAT s | HIL s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for point in args.points.split(","):
        bits, K = (int(v) for v in point.lower().split("x"))
        prof = load_profile("loihi2").with_weight_bits(bits)
        before_max, _ = evaluate_on_target(graph, prof, K, calib, xt, yt)
        mod = TtfsModule(graph)
        t0 = time.perf_counter()
        qat = finetune(graph, x, data.y_train, profile=prof, steps=K, x_monitor=xt, y_monitor=yt, seed=args.seed,
                       progress=False)
        t_qat = time.perf_counter() - t0
        mod.fix_scales(prof, qat.log["scale_policy"])
        before_auto, _ = evaluate_on_target(mod.to_graph(), prof, K, calib, xt, yt)
        t0 = time.perf_counter()
        hil = finetune(qat.graph, x, data.y_train, profile=prof, steps=K, x_monitor=xt, y_monitor=yt, mode="hil",
                       seed=args.seed, progress=False)
        t_hil = time.perf_counter() - t0
        lg = qat.log
        opts = (f"{lg['scale_policy']}, lr {lg['lr']:g}, {lg['epochs']} ep, {lg['schedule']}"
                + (", learned scales" if lg["learn_scales"] else "") + (", learned windows" if lg["learn_windows"]
                                                                        else ""))
        print(f"| {bits} | {K} | {pct(before_max)} | {pct(before_auto)} | {pct(lg['accuracy'][-1])} | "
              f"{pct(hil.log['accuracy'][-1])} | {opts} | {t_qat:.0f} | {t_hil:.0f} |")

    prof8 = load_profile("loihi2")
    if args.budget > 0:
        t0 = time.perf_counter()
        res = finetune_spike_budget(graph, x, data.y_train, budget=args.budget, profile=prof8, steps=16,
                                    seed=args.seed, progress=False)
        acc, spn = evaluate_on_target(res.graph, prof8, 16, calib, xt, yt)
        acc0, spn0 = evaluate_on_target(graph, prof8, 16, calib, xt, yt)
        s = res.log["spike_budget"]
        print(f"\n2. --spike-budget {args.budget:g} (8-bit, K = 16): penalty {s['chosen_penalty']:.3g} after "
              f"{len(s['runs'])} runs of {s['epochs_per_run']} epochs ({'met' if s['met'] else 'NOT met'} on "
              f"validation); test: accuracy {pct(acc0)} -> {pct(acc)}, spikes per hidden neuron {spn0:.3f} -> "
              f"{spn:.3f}; {time.perf_counter() - t0:.0f} s")

    if args.options:
        print("\n3. fine-tuning options, 8-bit weights (QAT, defaults otherwise)")
        print("| option | K | latency (steps) | accuracy | spikes per hidden neuron | windows B |")
        print("|---|---|---|---|---|---|")
        rows = [("plain QAT", 16, {}), ("time noise 0.5 step", 16, {"time_noise": 0.5}),
                ("adaptive window F = 10", 16, {"adapt_window": 10.0}),
                ("adaptive window F = 1", 16, {"adapt_window": 1.0}),
                ("window quantile 0.99", 16, {"window_quantile": 0.99}),
                ("plain QAT", 4, {"epochs": 5, "lr": 1e-4, "learn_scales": False, "learn_windows": False}),
                ("window quantile 0.99", 4, {"epochs": 5, "lr": 1e-4, "learn_scales": False,
                                             "learn_windows": False, "window_quantile": 0.99}),
                ("window quantile 0.99 + K = 4 defaults", 4, {"window_quantile": 0.99})]
        for name, K, kw in rows:
            r = finetune(graph, x, data.y_train, profile=prof8, steps=K, x_monitor=xt, y_monitor=yt, seed=args.seed,
                         progress=False, **kw)
            print(f"| {name} | {K} | {latency_steps(graph, K)} | {pct(r.log['accuracy'][0])} -> "
                  f"{pct(r.log['accuracy'][-1])} | {r.log['spikes_per_hidden_neuron'][-1]:.3f} | "
                  f"{', '.join(f'{b:.2f}' for b in r.log['windows'])} |")


def convert_model(model, x):
    from snncompile.ttfs.convert import convert

    return convert(model, x)


if __name__ == "__main__":
    main()
