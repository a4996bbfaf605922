"""Quantization-aware (QAT) and hardware-in-the-loop (HIL) fine-tuning of a TTFS network.

The network trains in its ReLU-equivalent form (:class:`.finetune_module.TtfsModule`; Stanojevic
et al. 2024 fine-tune the SNN this way).

* ``mode="qat"``: forward with the quantizer's own rounding as fake-quant (weights on the
  profile's grid with the per-layer scale the quantizer will use; activations as spike counts on
  the K-step grid, clipped to the window), straight-through gradients.
* ``mode="hil"``: every forward runs on the bit-accurate target (fxsim, or Lava): the current
  float parameters are quantized (snncompile.quantize.ttfs), the target runs the batch, and its
  spike counts and readout potentials replace the float forward values layer by layer
  (``a = a_target + (a_float - a_float.detach())``; each layer's float pre-activation is computed
  from the target's input counts).  Gradients flow through the float model; parameters are
  updated in float and re-quantized at the next step.

Options (docs/finetune.md; ``None`` = chosen from bits and K by :mod:`.finetune_auto`):

* ``spike_penalty`` λ: for fewer spikes per neuron, the loss gains λ times a soft count of the
  neurons that fire, the mean over hidden neurons of clip((z/δ + 1/2)/w, 0, 1) with z/δ the
  pre-activation in steps (a neuron fires when z/δ ≥ 1/2) and the ramp w = max(1, K/4) steps:
  its gradient reaches every neuron within w steps above the threshold, not only those at it;
* ``time_noise`` σ: spike-time jitter during training, in steps δ = B/K of each layer;
* ``adapt_window`` F: the authors' adaptive window, after every optimizer step
  B^(n) ← max(B^(n), F · max a^(n)) over the batch's pre-activations a^(n) (their code: F = 10);
  the windows only grow, no activation is clipped once F ≥ 1;
* latency: ``window_quantile`` q sets every window B^(n), layer by layer, to the q-quantile of
  the layer's positive pre-activations on the calibration samples (instead of (1 + ζ)·max):
  a finer step δ = B/K, so a smaller K (fewer steps, the latency K·(hidden layers + 1)) keeps
  the accuracy; ``window_scale`` shrinks every window by a factor; ``learn_windows`` trains B;
* ``learn_scales``: learned weight scales (learned step size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import nir
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import InvalidModel
from ..profile import HwProfile
from ..ttfs.graph import parse_ttfs
from .finetune_auto import resolve_options
from .finetune_module import TtfsModule

MODES = ("qat", "hil")
PENALTY_WIDTH = 0.25  # the spike penalty's soft count ramps over this fraction of the window (at least 1 step)


@dataclass
class FinetuneResult:
    graph: nir.NIRGraph
    log: dict = field(default_factory=dict)


def hw_forward(module: TtfsModule, target, profile, steps, x_calib, xb):
    """Quantize the current parameters, run the target on a batch; counts per layer + readout logits."""
    from ..neurons.ttfs import output_counts
    from ..quantize.ttfs import quantize_ttfs
    from ..targets.base import run_target
    from ..ttfs.fixed import fixed_layers

    q, _ = quantize_ttfs(module.to_graph(), profile, steps, x_calib)
    run = run_target(target, q, xb, profile=profile)
    fl = {layer.name: layer for layer in fixed_layers(parse_ttfs(q))}
    counts = {la.name: output_counts(fl[la.name].params, la.times) for la in run.layers}
    lsb = float(parse_ttfs(q).readout.meta["v_lsb"])
    return {"counts": counts, "logits": np.asarray(run.raw_logits, dtype=np.float64) * lsb, "run": run, "qgraph": q}


def evaluate_on_target(graph, profile, steps, x_calib, x, y, target_name="fxsim"):
    """(accuracy, spikes per hidden neuron) of a float graph quantized and run on a target."""
    from ..quantize.ttfs import quantize_ttfs
    from ..targets import run_target
    from ..validate import spikes_per_neuron

    q, _ = quantize_ttfs(graph, profile, steps, x_calib)
    run = run_target(target_name, q, x, profile=profile)
    return float(np.mean(run.decisions == y)), spikes_per_neuron(run, roles=("hidden",))


def latency_steps(graph: nir.NIRGraph, steps: int) -> int:
    """Steps from the first input step to the readout: K per window, the input's and every hidden layer's."""
    return steps * (1 + sum(1 for la in parse_ttfs(graph).layers if la.role == "hidden"))


def quantile_windows(module: TtfsModule, x: np.ndarray, q: float) -> None:
    """Set every hidden window, first layer first, to the q-quantile of its positive pre-activations."""
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64))
    for i, spec in enumerate(module.layers):
        if spec["role"] != "hidden":
            continue
        with torch.no_grad():
            _, _, pre = module(xt, mode="float")
        k = sum(1 for s in module.layers[:i] if s["role"] == "hidden")
        z = (pre[k] * spec["B"]).numpy().ravel()  # float mode: pre = z / B
        pos = z[z > 0]
        if len(pos):
            module.set_window(spec["name"], float(np.quantile(pos, q)))


def soft_spike_count(pre: list, steps: int) -> torch.Tensor:
    """The spike penalty's soft count: mean over hidden neurons of clip((p + 1/2)/w, 0, 1), p the
    pre-activation in steps, w = max(1, PENALTY_WIDTH·K) steps."""
    width = max(1.0, PENALTY_WIDTH * steps)
    return torch.cat([torch.clamp((p + 0.5) / width, 0.0, 1.0) for p in pre], dim=1).mean()


def _lr_factor(schedule: str, step: int, total: int) -> float:
    if schedule == "cosine" and total > 0:
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    return 1.0


def finetune(graph: nir.NIRGraph, x_train: np.ndarray, y_train: np.ndarray, *, profile: HwProfile, steps: int,
             x_monitor: np.ndarray | None = None, y_monitor: np.ndarray | None = None, monitor_name: str = "test",
             mode: str = "qat", target: str = "fxsim", epochs: int | None = None, batch_size: int = 64,
             lr: float | None = None, seed: int = 0, spike_penalty: float = 0.0, window_scale: float = 1.0,
             calib_samples: int = 1000, scale_policy: str | None = None, schedule: str | None = None,
             learn_scales: bool | None = None, learn_windows: bool | None = None, time_noise: float = 0.0,
             adapt_window: float | None = None, window_quantile: float | None = None,
             progress: bool = True) -> FinetuneResult:
    """Fine-tune a float TTFS graph for ``profile`` at ``steps`` per window on the training data.

    Returns the tuned graph and a log with the options used (``auto``: the ones chosen by the
    rule), per epoch the fxsim accuracy and spikes per hidden neuron on the monitoring split
    (``x_monitor``; for the log only: nothing is selected on it, the last epoch is returned), the
    training loss, and the latency in steps."""
    from ..targets import get_target

    if mode not in MODES:
        raise InvalidModel(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not 0 < window_scale <= 1.0 + 1e-12:
        raise InvalidModel(f"--window-scale must be in (0, 1], got {window_scale}")
    if not time_noise >= 0:
        raise InvalidModel(f"--time-noise must be >= 0 steps, got {time_noise}")
    if adapt_window is not None and not adapt_window > 0:
        raise InvalidModel(f"--adapt-window must be > 0 (the authors use 10), got {adapt_window}")
    if window_quantile is not None and not 0 < window_quantile <= 1:
        raise InvalidModel(f"--window-quantile must be in (0, 1], got {window_quantile}")
    opts, chosen = resolve_options(profile.weights.bits, steps, mode, scale_policy=scale_policy, lr=lr,
                                   epochs=epochs, schedule=schedule, learn_scales=learn_scales,
                                   learn_windows=learn_windows, spike_penalty=spike_penalty)
    epochs, lr = opts["epochs"], opts["lr"]
    x_tr = np.asarray(x_train, dtype=np.float64)
    y_tr = np.asarray(y_train)
    if x_monitor is None:
        x_monitor, y_monitor, monitor_name = x_tr[:1000], y_tr[:1000], "train (first 1000)"
    x_val, y_val = np.asarray(x_monitor, dtype=np.float64), np.asarray(y_monitor)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        x_calib = x_tr[:calib_samples]
        module = TtfsModule(graph)
        if window_scale != 1.0:
            module = TtfsModule(module.to_graph(window_scale))
        if window_quantile is not None:
            quantile_windows(module, x_calib, window_quantile)
        module.fix_scales(profile, opts["scale_policy"], learn=opts["learn_scales"])
        if opts["learn_windows"]:
            module.learn_windows()
        module.time_noise = float(time_noise)
        opt = torch.optim.Adam(module.param_groups(lr), lr=lr)
        tgt = get_target(target) if mode == "hil" else None
        acc0, spn0 = evaluate_on_target(module.to_graph(), profile, steps, x_calib, x_val, y_val)
        log = {"mode": mode, "target": target if mode == "hil" else None, "profile": profile.name,
               "weight_bits": profile.weights.bits, "steps": steps, **opts, "auto": chosen, "seed": seed,
               "spike_penalty": spike_penalty, "window_scale": window_scale, "time_noise": time_noise,
               "adapt_window": adapt_window, "window_quantile": window_quantile, "monitor": monitor_name,
               "monitor_samples": int(len(x_val)), "latency_steps": latency_steps(graph, steps),
               "epoch": [0], "accuracy": [acc0], "spikes_per_hidden_neuron": [spn0], "train_loss": [None]}
        bs = batch_size if mode != "hil" or target != "lava" else min(batch_size, 16)
        total = epochs * math.ceil(len(x_tr) / bs)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: _lr_factor(opts["schedule"], i, total))
        bar = tqdm(range(1, epochs + 1), desc=f"finetune ({mode})", unit="epoch", disable=not progress)
        for epoch in bar:
            module.train()
            order = torch.randperm(len(x_tr), generator=gen).numpy()
            tot, seen = 0.0, 0
            inner = tqdm(range(0, len(order), bs), desc="batches", leave=False,
                         disable=not progress or not (mode == "hil" and target == "lava"))
            for start in inner:
                idx = order[start:start + bs]
                xb = torch.as_tensor(x_tr[idx])
                yb = torch.as_tensor(y_tr[idx])
                hw = hw_forward(module, tgt, profile, steps, x_calib, x_tr[idx]) if mode == "hil" else None
                logits, acts, pre = module(xb, mode=mode, steps=steps, profile=profile, hw=hw)
                loss = F.cross_entropy(logits, yb)
                if spike_penalty > 0 and pre:
                    loss = loss + spike_penalty * soft_spike_count(pre, steps)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                module.sync()
                if adapt_window is not None:  # the authors' rule: windows grow to F x the batch's largest value
                    for spec, p in zip([s for s in module.layers if s["role"] == "hidden"], pre):
                        top = float(p.detach().max()) * spec["B"] / steps  # pre is in steps of B/K
                        if adapt_window * top > spec["B"]:
                            module.set_window(spec["name"], adapt_window * top)
                tot += float(loss.detach()) * len(idx)
                seen += len(idx)
            module.eval()
            acc, spn = evaluate_on_target(module.to_graph(), profile, steps, x_calib, x_val, y_val)
            log["epoch"].append(epoch)
            log["accuracy"].append(acc)
            log["spikes_per_hidden_neuron"].append(spn)
            log["train_loss"].append(tot / max(1, seen))
            bar.set_postfix(loss=f"{tot / max(1, seen):.4f}", acc=f"{acc:.4f}", spikes=f"{spn:.3f}")
    log["windows"] = [s["B"] for s in module.layers if s["role"] == "hidden"]
    log["weight_scales"] = dict(module.scales)
    extra = {"finetuned": {k: log[k] for k in ("mode", "target", "profile", "weight_bits", "steps", "epochs",
                                               "spike_penalty", "window_scale", "lr", "scale_policy")}}
    return FinetuneResult(module.to_graph(extra_meta=extra), log)
