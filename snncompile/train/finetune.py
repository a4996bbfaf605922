"""Quantization-aware (QAT) and hardware-in-the-loop (HIL) fine-tuning of a TTFS network.

A TTFS network equals a ReLU network with activations clipped at its windows B (DESIGN.md
section 3), so it trains like one (Stanojevic et al. 2024 fine-tune the SNN this way):
:class:`TtfsModule` is that ReLU-equivalent form, built from a float TTFS NIR graph.

* ``mode="qat"``: forward with the quantizer's own rounding as fake-quant (weights on the
  profile's grid with the per-layer scale the quantizer will choose; activations as spike counts
  on the K-step grid, clipped to the window), straight-through gradients.
* ``mode="hil"``: every forward runs on the bit-accurate target (fxsim, or Lava): the current
  float parameters are quantized (snncompile.quantize.ttfs), the target runs the batch, and its
  spike counts and readout potentials replace the float forward values layer by layer
  (``a = a_target + (a_float - a_float.detach())``; each layer's float pre-activation is computed
  from the target's input counts).  Gradients flow through the float model; parameters are
  updated in float and re-quantized at the next step.

Options: a spike penalty (a soft count of the neurons that would fire, mean over hidden
neurons) for fewer spikes per neuron, and ``window_scale`` to shrink the windows B (shorter
continuous-time latency; on the step grid the latency is set by K, so train at the smaller K
you want to deploy).  The result is a float TTFS NIR graph that compiles like any other.

``--spike-budget`` (:func:`finetune_spike_budget`) searches the spike-penalty weight in a bounded
number of short runs on a validation split carved from the training data.
Longer than 400 lines: the search drives :func:`finetune` and reads its log, so both live here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import nir
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..encode import ttfs_counts
from ..errors import InvalidModel
from ..ir import get_meta, set_meta
from ..profile import HwProfile
from ..quantize.fake import fake_quant_counts, fake_quant_weights
from ..quantize.rounding import layer_scale
from ..ttfs.graph import parse_ttfs

MODES = ("qat", "hil")


def _pair(v):
    a = [int(x) for x in np.ravel(np.asarray(v))]
    return (a[0], a[0]) if len(a) == 1 else (a[0], a[1])


class TtfsModule(nn.Module):
    """ReLU-equivalent form of a float TTFS graph, with trainable weights and biases."""

    def __init__(self, graph: nir.NIRGraph):
        super().__init__()
        net = parse_ttfs(graph)
        if net.quantized:
            raise InvalidModel("fine-tuning starts from the float model.nir, not model.q.nir")
        self.graph = graph
        self.net = net
        self.weights = nn.ParameterDict()
        self.biases = nn.ParameterDict()
        self.layers = []
        for layer in net.layers:
            spec = {"name": layer.name, "role": layer.role, "ops": [], "shape": layer.out_shape}
            for name, node in layer.ops:
                if isinstance(node, (nir.Affine, nir.Conv2d)):
                    self.weights[name] = nn.Parameter(torch.as_tensor(np.asarray(node.weight), dtype=torch.float64))
                    spec["affine"] = name
                spec["ops"].append((name, node))
            if layer.role != "maxpool":
                b = np.asarray(layer.node.v_leak, dtype=np.float64) / layer.meta["hold"] * layer.meta["t_min"]
                self.biases[layer.name] = nn.Parameter(torch.as_tensor(b.reshape(-1)))
            if layer.role == "hidden":
                spec["B"] = float(layer.meta["B"])
            self.layers.append(spec)

    def _apply(self, spec, a, weight_fn):
        x = a
        for name, node in spec["ops"]:
            if isinstance(node, nir.Affine):
                x = F.linear(x, weight_fn(name))
            elif isinstance(node, nir.Conv2d):
                x = F.conv2d(x, weight_fn(name), None, _pair(node.stride), _pair(node.padding), _pair(node.dilation),
                             int(node.groups))
            elif isinstance(node, nir.Flatten):
                x = torch.flatten(x, 1)
            elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
                k, s = _pair(node.kernel_size), _pair(node.stride)
                x = F.avg_pool2d(x, k, s) * (k[0] * k[1] if isinstance(node, nir.SumPool2d) else 1)
        return x

    def forward(self, x: torch.Tensor, mode: str = "float", steps: int | None = None, profile: HwProfile = None,
                hw: dict | None = None):
        """Logits and the activations of every spiking layer (flattened (N, neurons)).

        float: clipped ReLU (the reference); qat: fake-quant; hil: target values in the forward.
        """
        K = steps
        if mode in ("qat", "hil"):
            a = torch.as_tensor(ttfs_counts(x.detach().numpy(), K), dtype=torch.float64) / K
        else:
            a = x
        a = a.reshape((len(x), *self.net.input_shape))
        acts, pre = [], []
        prev_B = 1.0
        for spec in self.layers:
            if spec["role"] == "maxpool":
                (_, pool), = spec["ops"]
                a = F.max_pool2d(a, _pair(pool.kernel_size), _pair(pool.stride))
                if mode == "hil":
                    c = torch.as_tensor(hw["counts"][spec["name"]], dtype=torch.float64).reshape(a.shape)
                    a = c * prev_B / K + (a - a.detach())  # the target's value, the float gradient
                acts.append(a.reshape(len(a), -1))
                continue
            wf = self._weight_fn(mode, profile)
            z = self._apply(spec, a, wf).reshape(len(a), -1) + self.biases[spec["name"]]
            shape = (len(a), *spec["shape"])
            if spec["role"] == "readout":
                if mode == "hil":
                    z = torch.as_tensor(hw["logits"], dtype=torch.float64) + (z - z.detach())
                return z, acts, pre
            B = spec["B"]
            pre.append(z / (B / K) if K else z / B)
            if mode == "float":
                a = torch.clamp(z, 0.0, B)
            elif mode == "qat":
                a = fake_quant_counts(z, B / K, K)
            else:
                c = torch.as_tensor(hw["counts"][spec["name"]], dtype=torch.float64).reshape(len(a), -1)
                base = torch.clamp(z, 0.0, B)
                a = c * B / K + (base - base.detach())
            acts.append(a)
            a = a.reshape(shape)
            prev_B = B
        raise InvalidModel("TTFS graph without a readout")

    def fix_scales(self, profile: HwProfile, policy: str = "max") -> None:
        """Fix each layer's weight scale for ``profile``'s bits: the one an earlier fine-tuning stored in
        the graph, else max-abs or MSE-optimal from the current weights.  QAT trains against it and
        to_graph stores it for the quantizer."""
        w = profile.weights
        self.scale_bits = w.bits
        self.scales = {}
        for name, W in self.weights.items():
            stored = get_meta(self.graph.nodes[name]).get("weight_scale") or {}
            self.scales[name] = layer_scale(W.detach().numpy(), w.bits, w.full_bits, w.sign_mode, policy,
                                            stored.get(str(w.bits)))

    def _weight_fn(self, mode, profile):
        if mode != "qat":
            return lambda name: self.weights[name]
        w = profile.weights

        def fn(name):
            return fake_quant_weights(self.weights[name], self.scales[name], w.bits, w.full_bits, w.sign_mode)
        return fn

    def to_graph(self, window_scale: float = 1.0, extra_meta: dict | None = None) -> nir.NIRGraph:
        """The float TTFS graph with the current parameters (windows scaled by ``window_scale``)."""
        g = copy.deepcopy(self.graph)
        t_min = 1.0
        meta = get_meta(g)
        layer_meta = []
        prev: dict = {}  # the hidden layer a max-pool belongs to
        for spec, layer in zip(self.layers, parse_ttfs(g).layers):
            node = g.nodes[layer.name]
            m = dict(get_meta(node))
            for name, _ in spec["ops"]:
                if name in self.weights:
                    g.nodes[name].weight = self.weights[name].detach().numpy().copy()
                    if getattr(self, "scales", None):
                        am = dict(get_meta(g.nodes[name]))
                        am["weight_scale"] = {**(am.get("weight_scale") or {}),
                                              str(self.scale_bits): self.scales[name]}
                        set_meta(g.nodes[name], am)
            if spec["role"] == "maxpool":
                m.update(t_min=prev["t_min"], t_max=prev["t_max"])
                set_meta(node, m)
                layer_meta.append({"name": layer.name, "role": "maxpool", "t_min": m["t_min"], "t_max": m["t_max"]})
                continue
            b = self.biases[spec["name"]].detach().numpy().reshape(np.shape(node.v_leak))
            node.v_leak = m["hold"] * b / t_min
            m["t_min"] = t_min
            if spec["role"] == "hidden":
                B = spec["B"] * window_scale
                m.update(B=B, t_max=t_min + B)
                node.v_threshold = np.full(np.shape(node.v_threshold), B)
                layer_meta.append({"name": layer.name, "role": "hidden", "t_min": t_min, "t_max": t_min + B, "B": B,
                                   "X": m.get("X")})
                prev = {"t_min": t_min, "t_max": t_min + B}  # a following max-pool shares this window
                t_min = t_min + B
            else:
                layer_meta.append({"name": layer.name, "role": "readout", "t_min": t_min})
            set_meta(node, m)
        meta["layers"] = layer_meta
        if extra_meta:
            meta.update(extra_meta)
        set_meta(g, meta)
        return g


@dataclass
class FinetuneResult:
    graph: nir.NIRGraph
    log: dict = field(default_factory=dict)


def _hw_forward(module: TtfsModule, target, profile, steps, x_calib, xb):
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


def finetune(graph: nir.NIRGraph, x_train: np.ndarray, y_train: np.ndarray, *, profile: HwProfile, steps: int,
             x_monitor: np.ndarray | None = None, y_monitor: np.ndarray | None = None, monitor_name: str = "test",
             mode: str = "qat", target: str = "fxsim", epochs: int = 5, batch_size: int = 64, lr: float = 1e-4,
             seed: int = 0, spike_penalty: float = 0.0, window_scale: float = 1.0, calib_samples: int = 1000,
             scale_policy: str = "max", progress: bool = True) -> FinetuneResult:
    """Fine-tune a float TTFS graph for ``profile`` at ``steps`` per window on the training data.

    Returns the tuned graph and a log with, per epoch, the fxsim accuracy and spikes per hidden
    neuron on the monitoring split (``x_monitor``; for the log only: nothing is selected on it,
    the last epoch is returned) and the training loss."""
    from ..targets import get_target

    if mode not in MODES:
        raise InvalidModel(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not 0 < window_scale <= 1.0 + 1e-12:
        raise InvalidModel(f"--window-scale must be in (0, 1], got {window_scale}")
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
        module.fix_scales(profile, scale_policy)
        opt = torch.optim.Adam(module.parameters(), lr=lr)
        tgt = get_target(target) if mode == "hil" else None
        acc0, spn0 = evaluate_on_target(module.to_graph(), profile, steps, x_calib, x_val, y_val)
        log = {"mode": mode, "target": target if mode == "hil" else None, "profile": profile.name,
               "weight_bits": profile.weights.bits, "steps": steps, "epochs": epochs, "lr": lr, "seed": seed,
               "spike_penalty": spike_penalty, "window_scale": window_scale, "monitor": monitor_name,
               "monitor_samples": int(len(x_val)),
               "scale_policy": scale_policy,
               "epoch": [0], "accuracy": [acc0], "spikes_per_hidden_neuron": [spn0], "train_loss": [None]}
        bs = batch_size if mode != "hil" or target != "lava" else min(batch_size, 16)
        bar = tqdm(range(1, epochs + 1), desc=f"finetune ({mode})", unit="epoch", disable=not progress)
        for epoch in bar:
            order = torch.randperm(len(x_tr), generator=gen).numpy()
            tot, seen = 0.0, 0
            inner = tqdm(range(0, len(order), bs), desc="batches", leave=False,
                         disable=not progress or not (mode == "hil" and target == "lava"))
            for start in inner:
                idx = order[start:start + bs]
                xb = torch.as_tensor(x_tr[idx])
                yb = torch.as_tensor(y_tr[idx])
                hw = _hw_forward(module, tgt, profile, steps, x_calib, x_tr[idx]) if mode == "hil" else None
                logits, acts, pre = module(xb, mode=mode, steps=steps, profile=profile, hw=hw)
                loss = F.cross_entropy(logits, yb)
                if spike_penalty > 0 and pre:
                    soft = torch.cat([torch.clamp(p + 0.5, 0.0, 1.0) for p in pre], dim=1)
                    loss = loss + spike_penalty * soft.mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot += float(loss.detach()) * len(idx)
                seen += len(idx)
            acc, spn = evaluate_on_target(module.to_graph(), profile, steps, x_calib, x_val, y_val)
            log["epoch"].append(epoch)
            log["accuracy"].append(acc)
            log["spikes_per_hidden_neuron"].append(spn)
            log["train_loss"].append(tot / max(1, seen))
            bar.set_postfix(loss=f"{tot / max(1, seen):.4f}", acc=f"{acc:.4f}", spikes=f"{spn:.3f}")
    extra = {"finetuned": {k: log[k] for k in ("mode", "target", "profile", "weight_bits", "steps", "epochs",
                                               "spike_penalty", "window_scale")}}
    return FinetuneResult(module.to_graph(extra_meta=extra), log)


def write_finetune_outputs(res, output: str) -> str:
    """Write the tuned graph (``output``), its log ``<stem>.log.json`` and plot ``<stem>.log.png``;
    returns the stem."""
    import json
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from ..ir import write_nir, write_text
    from ..plots import finetune_curves

    stem = str(output)[:-4]
    parent = Path(output).parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".finetune.", dir=parent))  # all three files, or none
    try:
        write_nir(res.graph, tmp / "model.nir")
        write_text(tmp / "log.json", json.dumps(res.log, indent=2))
        finetune_curves(res.log, str(tmp / "log.png"))
        os.replace(tmp / "log.json", stem + ".log.json")
        os.replace(tmp / "log.png", stem + ".log.png")
        os.replace(tmp / "model.nir", output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return stem


def finetune_command(model: str, dataset: str, profile: str, bits, steps: int, output: str, **options) -> str:
    """``snncompile finetune``: read the TTFS graph, fine-tune it on the dataset's training split for the
    profile, write the tuned graph with its log and plot; the summary line."""
    from ..data import as_model_input, load_dataset
    from ..ir import read_nir
    from ..profile import load_profile
    from ..validation.nir_graph import validate_graph

    graph = read_nir(model, type_check=False)
    validate_graph(graph, str(model))
    net = parse_ttfs(graph)
    data = load_dataset(dataset)
    prof = load_profile(profile).with_weight_bits(bits)
    x = as_model_input(data.x_train, net.input_shape, data.name)
    xt = as_model_input(data.x_test, net.input_shape, data.name)
    budget = options.pop("spike_budget", None)
    if budget is not None:  # search the spike-penalty weight on a validation split of the training data
        res = finetune_spike_budget(graph, x, data.y_train, budget=budget, profile=prof, steps=steps, **options)
        stem = write_finetune_outputs(res, output)
        s = res.log["spike_budget"]
        return (f"spike budget {budget:g} per hidden neuron on {prof.name}, {prof.weights.bits}-bit weights, K={steps}: "
                f"penalty {s['chosen_penalty']:g} after {len(s['runs'])} run(s) ({'met' if s['met'] else 'NOT met'}); "
                f"validation accuracy {100 * s['baseline_accuracy']:.2f} % -> {100 * s['chosen_accuracy']:.2f} %, "
                f"spikes per hidden neuron {s['baseline_spikes']:.3f} -> {s['chosen_spikes']:.3f}; wrote {output}")
    res = finetune(graph, x, data.y_train, profile=prof, steps=steps, x_monitor=xt, y_monitor=data.y_test, **options)
    stem = write_finetune_outputs(res, output)
    log = res.log
    return (f"{log['mode']} on {prof.name}, {prof.weights.bits}-bit weights, K={steps}: fxsim accuracy "
            f"({log['monitor']}) {100 * log['accuracy'][0]:.2f} % -> {100 * log['accuracy'][-1]:.2f} %, spikes per "
            f"hidden neuron {log['spikes_per_hidden_neuron'][0]:.3f} -> {log['spikes_per_hidden_neuron'][-1]:.3f}; "
            f"wrote {output}, {stem}.log.json, {stem}.log.png")


def finetune_spike_budget(graph: nir.NIRGraph, x_train: np.ndarray, y_train: np.ndarray, *, budget: float,
                          profile: HwProfile, steps: int, max_runs: int = 6, val_fraction: float = 0.1,
                          seed: int = 0, epochs: int = 2, spike_penalty: float | None = None,
                          **options) -> FinetuneResult:
    """Fine-tune under a spike budget: at most ``budget`` spikes per hidden neuron on fxsim.

    A validation split (``val_fraction`` of the training data, a seeded permutation; at least one
    sample each side) is carved off; every run fine-tunes on the rest with :func:`finetune` and is
    judged on the split.  The spike-penalty weight is searched in at most ``max_runs`` short runs:
    0 first (plain QAT), then 0.1, 1, 10, ... until the budget is met, then geometric bisection
    between the last weight that missed and the first that met it.  The result is the run that
    meets the budget with the best validation accuracy (else the one with the fewest spikes, and
    ``log["spike_budget"]["met"]`` is False); ``log["spike_budget"]`` lists every run and the
    validation accuracy kept relative to the untuned graph.
    """
    if not budget > 0:
        raise InvalidModel(f"--spike-budget must be > 0 spikes per hidden neuron, got {budget}")
    if max_runs < 1:
        raise InvalidModel(f"max_runs must be >= 1, got {max_runs}")
    if spike_penalty:
        raise InvalidModel("--spike-budget searches the spike penalty itself; do not give --spike-penalty")
    x_tr, y_tr = np.asarray(x_train, dtype=np.float64), np.asarray(y_train)
    if len(x_tr) < 2:
        raise InvalidModel("--spike-budget needs at least 2 training samples (one for validation)")
    order = np.random.default_rng(seed).permutation(len(x_tr))
    n_val = min(len(x_tr) - 1, max(1, int(round(val_fraction * len(x_tr)))))
    val, fit = order[:n_val], order[n_val:]
    runs: list[tuple[float, FinetuneResult]] = []

    def run(weight: float) -> FinetuneResult:
        res = finetune(graph, x_tr[fit], y_tr[fit], profile=profile, steps=steps, x_monitor=x_tr[val],
                       y_monitor=y_tr[val], monitor_name=f"validation ({n_val} training samples)", seed=seed,
                       epochs=epochs, spike_penalty=weight, **options)
        runs.append((weight, res))
        return res

    def meets(res: FinetuneResult) -> bool:
        return res.log["spikes_per_hidden_neuron"][-1] <= budget

    lo, hi = None, None  # largest weight that missed, smallest that met
    weight = 0.0
    while len(runs) < max_runs:
        res = run(weight)
        if meets(res):
            hi = weight if hi is None else min(hi, weight)
        else:
            lo = weight if lo is None else max(lo, weight)
        if hi is None:
            weight = 0.1 if weight == 0 else 10.0 * weight
        elif hi == 0.0 or (lo is not None and hi / max(lo, 1e-12) < 1.5):
            break
        else:
            weight = float(np.sqrt(max(lo, hi / 100.0) * hi)) if lo and lo > 0 else hi / 10.0
            if lo is None and weight < 1e-3:
                break
    ok = [(w, r) for w, r in runs if meets(r)]
    if ok:
        weight, best = max(ok, key=lambda wr: (wr[1].log["accuracy"][-1], -wr[0]))
    else:
        weight, best = min(runs, key=lambda wr: wr[1].log["spikes_per_hidden_neuron"][-1])
    base_acc, base_spn = best.log["accuracy"][0], best.log["spikes_per_hidden_neuron"][0]
    best.log["spike_budget"] = {
        "budget": budget, "met": bool(ok), "chosen_penalty": weight, "validation_samples": int(n_val),
        "max_runs": max_runs, "epochs_per_run": epochs,
        "baseline_accuracy": base_acc, "baseline_spikes": base_spn,
        "chosen_accuracy": best.log["accuracy"][-1], "chosen_spikes": best.log["spikes_per_hidden_neuron"][-1],
        "accuracy_kept": best.log["accuracy"][-1] - base_acc,
        "runs": [{"penalty": w, "accuracy": r.log["accuracy"][-1], "spikes_per_hidden_neuron":
                  r.log["spikes_per_hidden_neuron"][-1]} for w, r in runs],
    }
    return best
