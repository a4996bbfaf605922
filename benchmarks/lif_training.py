"""LIF training methods x datasets, measured in one run (issue: train LIF networks on their dynamics).

    python benchmarks/lif_training.py [--datasets yinyang,mnist5k] [--methods bptt,bptt-qat,eventprop,erbp,ann]
                                      [--epochs yinyang=60,mnist5k=15] [--seed 0] [--json out.json]

Per (method, dataset): float test accuracy (the trained model's own forward pass), deployed test
accuracy on fxsim (loihi2, 8-bit weights; the quantizer of ``compile`` with its calibration: the
first 200 training samples), agreement float/deployed, spikes per spiking neuron per sample (test,
float model) and training time.  ``ann`` is the same-size ReLU ANN (Adam), the baseline; times
are also given as a ratio to its time measured in this run.

Architectures: yinyang 4-120-3, mnist5k 784-200-10.  BPTT uses the LI readout loss, 20 regular
steps; ``bptt-qat`` trains through the loihi2 integer dynamics (fake quantization).  EventProp
trains the continuous-time model (``RESTARTS`` starts, the best validation epoch on the grid
model), then ``QAT_EPOCHS`` epochs with its weights on the loihi2 grid (train/eventprop_deploy.py); ``pre-grid`` is the float model before
that step (``(fxsim)``: that model deployed as it is), ``float`` the network deployed; its deployed number is fxsim on the graph ``compile``
runs (count readout = earliest output spike) and its spikes per neuron are fxsim's (every
population).  ``erbp`` uses what ``snncompile train --method erbp`` uses: the dataset's preset
(train/erbp_job.py ``PRESETS``; Yin-Yang: data init, hidden_eta 0.01, center_feedback, 40 steps,
margin 0.2, eta 2e-3), else the defaults; ``erbp-margin`` the error margin 0.2 with eta 2e-3 alone
(train/erbp.py).  The test split is only measured, never used for selection.

Measured (``--datasets yinyang``, 2 shared CPU cores): ANN 200 epochs 96.9 %; EventProp
(``--methods eventprop --epochs yinyang=80 --seed 0``, split connections, tau0 = 0.025): pre-grid
98.0 % (fxsim 97.2 %), float 98.0 %, fxsim 97.6 % (NIR reference 97.6 %, 99.2 % agreement with
the continuous model, 0.66 spikes per neuron, 306 s with another job on the second core); seeds 1
and 2 through ``snncompile train`` and ``compile``: train/eventprop_deploy.py; eRBP 30 epochs (seed 0, ``--methods erbp``): 95.0 %, fxsim 95.0 % (8.4 spikes per neuron);
with the defaults (before the preset): 80.8 %, fxsim 78.5 %; ``erbp-margin``: 86.8 %, fxsim 87.4 %.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

ARCH = {"yinyang": "4-120-3", "mnist5k": "784-200-10", "digits": "64-64-10"}
EVENTPROP_STEPS = 81   # latency steps of the deployed EventProp graph (dt = t_in / 80)
ERBP_MARGIN = {"margin": 0.2, "eta": 2e-3}   # erbp-margin: the margin alone, without the drift fix (train/erbp.py)


def _epochs(spec: str) -> dict:
    out = {}
    for part in spec.split(","):
        k, v = part.split("=")
        out[k.strip()] = int(v)
    return out


def _deployed_chain(weights, hp, x_train, x_test, y_test, seed):
    from snncompile.encode import encode
    from snncompile.profile import load_profile
    from snncompile.train.bptt import decisions, evaluate_chain, quant_params

    calib = encode(x_train[:200], hp.steps, hp.encoding, seed)
    qp = quant_params(weights, hp, load_profile("loihi2"), calib, (x_train.shape[1],), "")
    xs = encode(x_test, hp.steps, hp.encoding, seed)
    fs, counts = evaluate_chain(weights, xs, hp)
    qs, _ = evaluate_chain(weights, xs, hp, qp)
    spiking = counts if hp.loss != "readout" else counts[:-1]
    spn = float(sum(c.sum(1) for c in spiking).mean() / sum(c.shape[1] for c in spiking))
    return (float((decisions(fs) == y_test).mean()), float((decisions(qs) == y_test).mean()),
            float((decisions(qs) == decisions(fs)).mean()), spn)


def run_one(method, name, data, epochs, seed):
    import torch

    from snncompile.data import as_model_input

    arch = ARCH[name]
    n_in = int(arch.split("-")[0])
    x = as_model_input(np.asarray(data.x_train), (n_in,), name).reshape(len(data.x_train), -1).astype(np.float64)
    xt = as_model_input(np.asarray(data.x_test), (n_in,), name).reshape(len(data.x_test), -1).astype(np.float64)
    y, yt = np.asarray(data.y_train), np.asarray(data.y_test)
    t0 = time.perf_counter()
    row = {"method": method, "dataset": name, "arch": arch, "epochs": epochs}
    if method == "ann":
        from snncompile.train.ann import build_ann, evaluate_ann, train_ann

        ann = build_ann(arch, seed=seed)
        train_ann(ann, x.astype(np.float32), y, epochs=epochs, batch_size=64, lr=1e-3, seed=seed, progress=False)
        row["float_acc"] = float((evaluate_ann(ann, xt.astype(np.float32)).argmax(1) == yt).mean())
    elif method in ("bptt", "bptt-qat"):
        from snncompile.train.bptt import train_bptt

        res = train_bptt(x, y, arch=arch, epochs=epochs, batch_size=64, seed=seed, progress=False,
                         profile="loihi2" if method == "bptt-qat" else None, loss="readout", dataset_name=name)
        row["train_s"] = res.train_time_s
        row["float_acc"], row["deployed_acc"], row["agreement"], row["spikes_per_neuron"] = \
            _deployed_chain(res.weights, res.hyper, x, xt, yt, seed)
    elif method == "eventprop":
        from snncompile.train.eventprop import train_eventprop
        from snncompile.train.eventprop_deploy import evaluate_eventprop, finetune_on_grid

        xv = None if data.x_val is None else \
            as_model_input(np.asarray(data.x_val), (n_in,), name).reshape(len(data.x_val), -1).astype(np.float64)
        res = train_eventprop(x, y, arch=arch, epochs=epochs, batch_size=64, seed=seed, progress=False,
                              x_val=xv, y_val=data.y_val, steps=EVENTPROP_STEPS)
        row["float_only_acc"], _, pre = evaluate_eventprop(res, xt, yt, profile="loihi2", x_calib=x)
        row["float_only_deployed_acc"] = pre["deployed_accuracy"]
        res = finetune_on_grid(res, x, y, "loihi2", x_val=xv, y_val=data.y_val)
        row["train_s"] = res.train_time_s
        acc, spn, extra = evaluate_eventprop(res, xt, yt, profile="loihi2", x_calib=x)
        row.update(float_acc=acc, deployed_acc=extra["deployed_accuracy"], agreement=extra["deployed_agreement"],
                   reference_acc=extra["reference_accuracy"], window_acc=extra["window_accuracy"],
                   spikes_per_neuron=extra["deployed_spikes_per_neuron"], deploy_steps=res.hyper.steps,
                   best_epoch=res.history["float"].get("best_epoch"))
    elif method in ("erbp", "erbp-margin"):
        from snncompile.train.bptt import BpttHyper
        from snncompile.train.erbp import train_erbp
        from snncompile.train.erbp_job import preset_for

        extra = dict(ERBP_MARGIN) if method == "erbp-margin" else {"eta": None}
        if method == "erbp":  # what `snncompile train --method erbp` uses: the dataset's preset, if any
            extra["eta"], hyper = preset_for(name)
            extra.update(hyper)
        res = train_erbp(x, y, arch=arch, epochs=epochs, batch_size=32, lr=extra.get("eta"), seed=seed,
                         progress=False, **{k: v for k, v in extra.items() if k != "eta"})
        hp = BpttHyper(steps=res.hyper.steps, encoding=res.hyper.encoding, tau=res.hyper.tau, loss="count")
        row["train_s"] = res.train_time_s
        row["float_acc"], row["deployed_acc"], row["agreement"], row["spikes_per_neuron"] = \
            _deployed_chain(res.weights, hp, x, xt, yt, seed)
    else:
        raise SystemExit(f"unknown method {method!r}")
    row.setdefault("train_s", time.perf_counter() - t0)
    row["torch_threads"] = torch.get_num_threads()
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="yinyang,mnist5k")
    ap.add_argument("--methods", default="ann,bptt,bptt-qat,eventprop,erbp,erbp-margin")
    ap.add_argument("--epochs", default="yinyang=60,mnist5k=15,digits=10,eventprop:yinyang=80,ann:yinyang=200,"
                    "erbp:yinyang=30,erbp-margin:yinyang=30",
                    help="per dataset; a method:dataset=N entry (e.g. erbp:yinyang=200) overrides for that pair")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from snncompile.data import load_dataset

    eps = _epochs(args.epochs)
    rows = []
    for name in args.datasets.split(","):
        data = load_dataset(name)
        for method in args.methods.split(","):
            ep = eps.get(f"{method}:{name}", eps.get(name, 10))
            row = run_one(method, name, data, ep, args.seed)
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = {r["dataset"]: r for r in rows if r["method"] == "ann"}
    print()
    print(f"{'method':<11} {'dataset':<8} {'arch':<11} {'ep':>4} {'pre-grid':>8} {'(fxsim)':>8} {'float':>8} {'fxsim':>8} {'agree':>8} "
          f"{'spk/neu':>8} {'train s':>8} {'x ANN t':>8} {'ANN acc':>8}")
    for r in rows:
        b = base.get(r["dataset"])
        fmt = lambda v, p=True: "–" if v is None else (f"{100 * v:.2f}" if p else f"{v:.2f}")  # noqa: E731
        ratio = f"{r['train_s'] / b['train_s']:.1f}" if b and r["method"] != "ann" else "–"
        print(f"{r['method']:<11} {r['dataset']:<8} {r['arch']:<11} {r['epochs']:>4} {fmt(r.get('float_only_acc')):>8} "
              f"{fmt(r.get('float_only_deployed_acc')):>8} "
              f"{fmt(r.get('float_acc')):>8} "
              f"{fmt(r.get('deployed_acc')):>8} {fmt(r.get('agreement')):>8} "
              f"{fmt(r.get('spikes_per_neuron'), False):>8} {r['train_s']:>8.1f} {ratio:>8} "
              f"{fmt(b.get('float_acc') if b else None):>8}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
