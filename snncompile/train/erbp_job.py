"""``snncompile train --method erbp`` as one library call: train an LIF chain with eRBP, compare with
backprop, write NIR.

The command trains the spiking network with :func:`snncompile.train.erbp.train_erbp` (with the
dataset's ``PRESETS`` entry where it has one: Yin-Yang's drift fix, train/erbp.py), trains the
same-size ReLU ANN with backprop (Adam, :func:`snncompile.train.ann.train_ann`, max(20, epochs)
epochs; Yin-Yang max(200, epochs)) on the same split as a baseline, and writes

* ``output`` (.nir): the deployed graph (:func:`snncompile.train.erbp.erbp_to_nir`);
* ``<output stem>.train.json``: history, both accuracies, hyper-parameters, timings.

With ``--profile`` the weights stay on the profile's grid while learning, with seeded stochastic
rounding (``QUANT_ROUNDING``): deterministic rounding to nearest drops every mini-batch update
smaller than half a grid step (measured on MNIST-5k 784-200-200-10, 8-bit loihi2 grid, 15 epochs:
stochastic 93.5 %, deterministic 71.7 %, float 92.9 %).

Validation during training: the dataset's validation split when it has one (yinyang), else the
test split, for monitoring only (the final weights are those of the last epoch, never selected on
it).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ..errors import InvalidModel
from ..ir import json_clean, write_text

ANN_EPOCHS = 20   # baseline: at least this many epochs (and at least eRBP's), Adam, lr 1e-3, batch 64
ANN_EPOCHS_BY_DATASET = {"yinyang": 200}  # Yin-Yang's ANN needs them: 30 epochs 83.0 %, 200 epochs 96.9 % (seed 0)
ANN_LR = 1e-3
ANN_BATCH = 64
QUANT_ROUNDING = "stochastic"
# Per-dataset settings of the rule (train/erbp.py, "Yin-Yang"), chosen on the validation split;
# ``--lr`` replaces ``eta`` and a non-zero ``--margin`` replaces ``margin``.
PRESETS = {
    "yinyang": {"eta": 2e-3, "margin": 0.2, "steps": 40, "init": "data", "init_scale": 8.0, "hidden_eta": 0.01,
                "center_feedback": True},
}


def preset_for(name: str, lr: float | None = None, margin: float = 0.0) -> tuple[float | None, dict]:
    """(eta, other ErbpHyper fields) for dataset ``name``: its preset with ``lr`` / ``margin`` applied."""
    hyper = dict(PRESETS.get(name, {}))
    eta = hyper.pop("eta", None)
    if lr is not None:
        eta = float(lr)
    if margin:
        hyper["margin"] = float(margin)
    return eta, hyper


def _log_path(output: Path) -> Path:
    return output.with_name(output.stem + ".train.json")


def train_erbp_command(data, arch: str, epochs: int, batch_size: int, lr: float | None, profile: str | None,
                       seed: int, output: str, margin: float = 0.0, preset: bool = True) -> tuple[dict, list[str]]:
    """Run the whole command; returns the log dict that is also written next to ``output``, and the
    summary lines the CLI prints.  ``preset``: use the dataset's ``PRESETS`` entry (False: the
    ErbpHyper defaults, as before the Yin-Yang drift fix)."""
    from ..data import as_model_input
    from ..ir import write_nir
    from .ann import build_ann, evaluate_ann, parse_arch, train_ann
    from .erbp import erbp_to_nir, evaluate_erbp, train_erbp

    out = Path(output)
    if out.suffix != ".nir":
        raise InvalidModel(f"--method erbp writes NIR: give an output path ending in .nir, got {output!r}")
    input_shape, tokens = parse_arch(arch)
    bad = [t[0] for t in tokens if t[0] != "linear"]
    if bad:
        raise InvalidModel(f"--method erbp trains fully connected networks only; {arch!r} has a {bad[0]} layer "
                           "(use e.g. 784-200-200-10)")
    flat = (math.prod(input_shape),)
    x = as_model_input(data.x_train, input_shape, data.name).reshape(len(data.x_train), -1)
    xt = as_model_input(data.x_test, input_shape, data.name).reshape(len(data.x_test), -1)
    if data.x_val is not None:
        xv, yv, monitor = as_model_input(data.x_val, input_shape, data.name).reshape(len(data.x_val), -1), \
            data.y_val, "val"
    else:
        xv, yv, monitor = xt, data.y_test, "test"

    eta, hyper = preset_for(data.name if preset else "", lr, margin)
    result = train_erbp(x, data.y_train, arch=arch, epochs=epochs, batch_size=batch_size, lr=eta, seed=seed,
                        profile=profile, rounding=QUANT_ROUNDING, x_val=xv, y_val=yv, progress=True, **hyper)
    test_acc, _ = evaluate_erbp(result, xt, data.y_test)
    result.accuracy["test"] = test_acc
    if monitor == "test":
        result.accuracy.pop("val", None)  # the monitor split was the test split: report it once

    ann = build_ann(arch, seed=seed)
    ann_epochs = max(ANN_EPOCHS_BY_DATASET.get(data.name, ANN_EPOCHS), int(epochs))
    t0 = time.perf_counter()
    ann_hist = train_ann(ann, as_model_input(data.x_train, ann.input_shape, data.name), data.y_train,
                         epochs=ann_epochs, batch_size=ANN_BATCH, lr=ANN_LR, seed=seed, progress=True)
    ann_time = time.perf_counter() - t0
    xt_ann = as_model_input(data.x_test, ann.input_shape, data.name)
    ann_acc = float((evaluate_ann(ann, xt_ann).argmax(1) == np.asarray(data.y_test)).mean())

    graph = erbp_to_nir(result, flat, data.name)
    write_nir(graph, out)
    log = {
        "dataset": data.name,
        "arch": arch,
        "method": "erbp",
        "monitor_split": monitor,
        "preset": data.name if preset and data.name in PRESETS else None,
        "erbp": {"accuracy": dict(result.accuracy), "history": result.history, "hyper": result.describe(),
                 "train_time_s": result.train_time_s},
        "ann_baseline": {"accuracy": {"train": ann_hist["train_acc"][-1] if ann_hist["train_acc"] else None,
                                      "test": ann_acc},
                         "epochs": ann_epochs, "batch_size": ANN_BATCH, "lr": ANN_LR, "optimizer": "adam",
                         "history": ann_hist, "train_time_s": ann_time},
        "output": str(out),
    }
    log_path = _log_path(out)
    write_text(log_path, json.dumps(json_clean(log, nonfinite=lambda x: None), indent=1) + "\n")

    quant = result.quant
    on_grid = (f", weights on the {quant['profile']} grid ({quant['bits']}-bit {quant['sign_mode']}, "
               f"{quant['rounding']} rounding)") if quant else ""
    lines = [f"eRBP {arch} on {data.name}{on_grid}: train {100 * result.accuracy['train']:.2f} %, "
             f"test {100 * test_acc:.2f} % ({epochs} epochs, {result.train_time_s:.1f} s)",
             f"ANN baseline (same size, ReLU, backprop/Adam, {ann_epochs} epochs): test {100 * ann_acc:.2f} % "
             f"({ann_time:.1f} s); gap {100 * (ann_acc - test_acc):+.2f} points",
             f"wrote {out} and {log_path}"]
    return log, lines


__all__ = ["ANN_EPOCHS", "ANN_EPOCHS_BY_DATASET", "PRESETS", "QUANT_ROUNDING", "preset_for", "train_erbp_command"]
