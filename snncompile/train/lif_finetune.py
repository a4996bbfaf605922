"""Fine-tuning of LIF graphs for a profile: ``snncompile finetune <lif model.nir> --mode qat|hil``.

The graph (our eRBP / BPTT chains, norse / snnTorch exports that ``compile`` accepts) becomes a
:class:`~.lif_finetune_model.LifNet` whose connection weights (and non-zero Affine biases) are
trained with Adam on the dataset's training split, encoded with the graph's recorded encoder
(else regular, 32 steps: compile's default) and ``--seed``.

* ``mode="qat"``: the forward pass runs the profile's integer dynamics with fake quantization:
  Loihi arithmetics (``loihi``, ``ideal``) through :class:`~.lif_finetune_model.LoihiQuant`
  (:func:`snncompile.neurons.lif.loihi_step`, ``quantize_lif``'s units), Xylo through
  :class:`~.xylo_torch.XyloQuant`; backward through the surrogate.  The quantization (LSBs,
  exponents / shifts) is recomputed from the current weights at every epoch, with compile's
  calibration (the first ``calib_samples`` training samples, encoded with ``--seed``).
* ``mode="hil"``: every mini-batch is quantized as compile would and run on a bit-accurate target
  (fxsim, lava, xylosim) through :func:`snncompile.targets.run_target`; its spikes per population
  and step and its readout replace the float model's values (straight-through), the gradient is
  the float model's surrogate one.

Adam's learning rate is relative: ``lr`` times each connection's largest |weight| at the start.
Loss: cross-entropy of ``logit_scale * scores`` (spike counts: 10 / T_in per spike; a potential
readout: 1) plus ``spike_penalty`` x hidden spikes per neuron per sample.  After every epoch the
tuned float graph is quantized and run on fxsim on the monitoring split (the dataset's validation
split where it has one, else the test split; for the log only: the last epoch is returned) and on
the float reference.  The written graph keeps the input's metadata (dt, encoding) and adds
``finetuned``; ``compile --target fxsim --profile P`` deploys it.
"""

from __future__ import annotations

import time

import nir
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import InvalidModel
from ..ir import get_meta
from .lif_finetune_model import LifNet, LoihiQuant

MODES = ("qat", "hil")
HIL_TARGETS = ("fxsim", "lava", "xylosim")
CALIB_SAMPLES = 200   # compile's DEFAULT_CALIB_SAMPLES
HEADROOM_BITS = 1     # compile's default


def is_lif_graph(path: str) -> bool:
    """True for a spiking NIR graph of the LIF family (not our TTFS format)."""
    from ..ir import read_nir

    try:
        graph = read_nir(path, type_check=False)
    except Exception:  # noqa: BLE001 - the TTFS command reports unreadable files itself
        return False
    kinds = (nir.LIF, nir.CubaLIF, nir.IF, nir.LI, nir.CubaLI, nir.I)
    return get_meta(graph).get("format") != "snncompile-ttfs" and any(
        isinstance(n, kinds) for n in graph.nodes.values())


def encoding_of(graph) -> tuple:
    from ..passes.lif import DEFAULT_STEPS

    enc = get_meta(graph).get("encoding")
    enc = enc if isinstance(enc, dict) else {}
    return enc.get("type") or "regular", int(enc.get("steps") or DEFAULT_STEPS)


def quantizer_for(profile):
    """The fake-quant class of the profile's arithmetic."""
    if profile.arithmetic in ("loihi", "ideal"):
        return LoihiQuant
    if profile.arithmetic == "xylo":
        from .xylo_torch import XyloQuant

        return XyloQuant
    raise InvalidModel(f"profile {profile.name}: LIF fine-tuning runs the loihi, ideal and xylo arithmetics, "
                       f"not {profile.arithmetic!r}")


def evaluate(model: LifNet, quant_cls, profile, calib, raster, y) -> dict:
    """Float-reference and fxsim accuracy (and spikes per hidden neuron) of the current weights,
    quantized as compile does."""
    from ..lif.reference import simulate
    from ..targets import run_target
    from ..validate import spikes_per_neuron

    ref = simulate(model.current_net(), raster)
    q = quant_cls(model, profile, calib, HEADROOM_BITS)
    run = run_target("fxsim", q.qgraph, spikes=raster, profile=profile)
    return {"float": float(np.mean(ref.scores.argmax(1) == y)), "deployed": float(np.mean(run.decisions == y)),
            "spikes": spikes_per_neuron(run, roles=("hidden",))}


def target_spikes(model: LifNet, quant, target, raster: np.ndarray, profile) -> dict:
    """Run the batch on the target: spikes per population on the float model's step grid, readout
    scores, and whether the target's own check against fxsim held."""
    from ..targets import run_target

    opts = {"record": True} if target.name == "fxsim" else {"keep_traces": True}
    run = run_target(target, quant.qgraph, spikes=raster, profile=profile, **opts)
    t_float = raster.shape[1] + model.net.depth
    xylo = profile.arithmetic == "xylo"
    if xylo:
        from .xylo_torch import align_xylo_spikes

        spikes = align_xylo_spikes(run.spikes, t_float)
    else:
        spikes = {k: np.asarray(v, dtype=np.float64) for k, v in run.spikes.items()}
    return {"spikes": spikes, "scores": np.asarray(run.logits, dtype=np.float64), "subtract": xylo,
            "bit_exact_with_fxsim": run.info.get("bit_exact_with_fxsim")}


def param_groups(model: LifNet, lr: float) -> list:
    """Adam groups with ``lr`` relative to each connection's largest |weight| (its bias shares it), so
    that one ``--lr`` fits graphs whose weights live on any scale (norse exports: ~10, eRBP: ~1)."""
    groups = []
    for name, w in model.weights.items():
        scale = float(w.detach().abs().max()) or 1.0
        params = [w] + ([model.biases[name]] if name in model.biases else [])
        groups.append({"params": params, "lr": lr * scale})
    return groups


def loss_of(out: dict, y: torch.Tensor, scale: float, spike_penalty: float, model: LifNet):
    loss = F.cross_entropy(scale * out["scores"], y)
    n_hidden = model.hidden_neurons()
    if spike_penalty and n_hidden:
        hid = sum(c.sum(1) for k, c in out["counts"].items()
                  if k != model.readout and model.net.populations[k].spiking) / n_hidden
        loss = loss + spike_penalty * hid.mean()
    return loss


def finetune_lif(graph: nir.NIRGraph, data, *, profile, mode: str = "qat", target: str = "fxsim", epochs: int = 5,
                 batch_size: int = 64, lr: float = 1e-3, seed: int = 0, spike_penalty: float = 0.0,
                 calib_samples: int = CALIB_SAMPLES, max_batches: int | None = None, progress: bool = True):
    """Fine-tune a LIF graph for ``profile`` (module docstring); returns a
    :class:`snncompile.train.finetune.FinetuneResult` (the tuned float graph and the log)."""
    from ..data import as_model_input
    from ..encode import encode
    from ..targets import get_target
    from .finetune import FinetuneResult

    if mode not in MODES:
        raise InvalidModel(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "hil" and target not in HIL_TARGETS:
        raise InvalidModel(f"--target {target!r}: LIF hil runs on {', '.join(HIL_TARGETS)}")
    if mode == "hil" and target != "fxsim" and (target == "xylosim") != (profile.arithmetic == "xylo"):
        raise InvalidModel(f"--target {target} runs {'Xylo' if target == 'xylosim' else 'Loihi'} arithmetic; "
                           f"profile {profile.name} has {profile.arithmetic!r} (fxsim runs both)")
    quant_cls = quantizer_for(profile)
    model = LifNet(graph)
    kind, steps = encoding_of(graph)
    shape = model.net.input_shape
    x_tr = as_model_input(np.asarray(data.x_train), shape, data.name)
    y_tr = np.asarray(data.y_train)
    if data.x_val is not None:
        x_mon, y_mon, monitor = data.x_val, data.y_val, "val"
    else:
        x_mon, y_mon, monitor = data.x_test, data.y_test, "test"
    x_mon = as_model_input(np.asarray(x_mon), shape, data.name)
    n_out = model.net.populations[model.readout].neurons
    if n_out < data.n_classes:
        raise InvalidModel(f"the readout {model.readout!r} has {n_out} neurons but dataset {data.name!r} has "
                           f"{data.n_classes} classes")
    spikes = encode(x_tr, steps, kind, seed)
    calib = encode(x_tr[:calib_samples], steps, kind, seed)
    mon = encode(x_mon, steps, kind, seed)
    scale = 10.0 / steps if model.spiking_readout else 1.0
    tgt = get_target(target) if mode == "hil" else None
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(param_groups(model, lr))
        ev = evaluate(model, quant_cls, profile, calib, mon, np.asarray(y_mon))
        log = {"family": "lif", "mode": mode, "target": target if mode == "hil" else None, "profile": profile.name,
               "arithmetic": profile.arithmetic, "weight_bits": profile.weights.bits, "steps": steps,
               "encoding": kind, "epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
               "spike_penalty": spike_penalty, "monitor": monitor, "monitor_samples": int(len(mon)),
               "max_batches": max_batches, "epoch": [0], "accuracy": [ev["deployed"]],
               "float_accuracy": [ev["float"]], "spikes_per_hidden_neuron": [ev["spikes"]], "train_loss": [None],
               "hil_bit_exact_with_fxsim": [] if mode == "hil" and target != "fxsim" else None}
        bar = tqdm(range(1, epochs + 1), desc=f"finetune LIF ({mode})", unit="epoch", disable=not progress)
        for epoch in bar:
            quant = quant_cls(model, profile, calib, HEADROOM_BITS) if mode == "qat" else None
            order = torch.randperm(len(y_tr), generator=gen).numpy()
            starts = list(range(0, len(order), batch_size))[:max_batches]
            tot, seen = 0.0, 0
            for start in tqdm(starts, desc="batches", leave=False, disable=not progress or mode != "hil"):
                idx = order[start:start + batch_size]
                sb = torch.from_numpy(spikes[idx].astype(np.float64))
                if mode == "hil":
                    q = quant_cls(model, profile, calib, HEADROOM_BITS)
                    hw = target_spikes(model, q, tgt, spikes[idx], profile)
                    if log["hil_bit_exact_with_fxsim"] is not None:
                        log["hil_bit_exact_with_fxsim"].append(hw["bit_exact_with_fxsim"])
                    out = model(sb, mode="hil", quant=q, hw=hw)
                else:
                    out = model(sb, mode="float") if quant is None else quant.forward(model, sb)
                loss = loss_of(out, torch.from_numpy(y_tr[idx]), scale, spike_penalty, model)
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot += float(loss.detach()) * len(idx)
                seen += len(idx)
            ev = evaluate(model, quant_cls, profile, calib, mon, np.asarray(y_mon))
            for key, val in (("accuracy", ev["deployed"]), ("float_accuracy", ev["float"]),
                             ("spikes_per_hidden_neuron", ev["spikes"]), ("train_loss", tot / max(1, seen)),
                             ("epoch", epoch)):
                log[key].append(val)
            bar.set_postfix(loss=f"{tot / max(1, seen):.4f}", fxsim=f"{ev['deployed']:.4f}", ref=f"{ev['float']:.4f}")
    log["train_time_s"] = round(time.perf_counter() - t0, 3)
    extra = {"finetuned": {k: log[k] for k in ("family", "mode", "target", "profile", "weight_bits", "epochs", "lr",
                                               "seed", "spike_penalty")}}
    return FinetuneResult(model.to_graph(extra), log)


def finetune_lif_command(model: str, dataset: str, profile: str, bits, output: str, ttfs_only: dict | None = None,
                         **options) -> str:
    """``snncompile finetune`` on a LIF graph: read, fine-tune, write graph + log + plot; the summary.
    ``ttfs_only``: option name -> whether it was given (TTFS-only options are errors here)."""
    given = [k for k, v in (ttfs_only or {}).items() if v]
    if given:
        raise InvalidModel(f"{', '.join(given)}: TTFS fine-tuning options; {model} is a spiking (LIF) NIR graph "
                           "(its input code and length are the ones recorded in the graph)")
    from ..data import load_dataset
    from ..ir import read_nir
    from ..profile import load_profile
    from .finetune import write_finetune_outputs

    graph = read_nir(model, type_check=False)
    prof = load_profile(profile).with_weight_bits(bits)
    options = {k: v for k, v in options.items() if v is not None}  # None: this module's defaults (epochs, lr)
    res = finetune_lif(graph, load_dataset(dataset), profile=prof, **options)
    stem = write_finetune_outputs(res, output)
    log = res.log
    how = log["mode"] + (f" on {log['target']}" if log["target"] else "")
    return (f"LIF {how}, {prof.name} ({prof.arithmetic}), {prof.weights.bits}-bit weights: fxsim accuracy "
            f"({log['monitor']}) {100 * log['accuracy'][0]:.2f} % -> {100 * log['accuracy'][-1]:.2f} %, float "
            f"reference {100 * log['float_accuracy'][0]:.2f} % -> {100 * log['float_accuracy'][-1]:.2f} %, spikes per "
            f"hidden neuron {log['spikes_per_hidden_neuron'][0]:.3f} -> {log['spikes_per_hidden_neuron'][-1]:.3f}; "
            f"wrote {output}, {stem}.log.json, {stem}.log.png")


__all__ = ["HIL_TARGETS", "MODES", "finetune_lif", "finetune_lif_command", "is_lif_graph"]
