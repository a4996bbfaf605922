"""The compile driver for spiking NIR graphs (LIF-family neurons): norse / snnTorch / sinabs
exports and eRBP-trained networks.

    read      NIR file                           -> populations and connections (frontends.nir)
    encode    test images                        -> input spike rasters (encode.py)
    quantize  graph + profile + calibration      -> Loihi-LIF integer graph (model.q.nir)
    check     integer graph + profile            -> resource mapping, or ProfileViolation
    run       reference (float), fxsim, lava, norse
"""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np

from .data import Dataset, as_model_input
from .errors import InvalidModel, ProfileViolation
from .nirio import get_meta
from .profile import load_profile
from .report import Report
from .targets.base import LayerRun, Run, decide

DEFAULT_STEPS = 32


def encoding_of(net, opts) -> tuple[str, int]:
    enc = net.meta.get("encoding", {}) if isinstance(net.meta.get("encoding"), dict) else {}
    kind = opts.encoding or enc.get("type") or "regular"
    steps = opts.sim_steps or enc.get("steps") or DEFAULT_STEPS
    return kind, int(steps)


def lif_mapping(qgraph, profile) -> dict:
    """Resource rows of a quantized LIF graph (neurons, fan-in, synapses per population), checked."""
    from .lif.fixed import read_qlif
    from .mapping import check_rows

    qn = read_qlif(qgraph)
    rows = []
    for name, p in qn.pops.items():
        mats = [c.weight.numpy() != 0 for c in qn.conns if c.dst == name]
        fan_in = int(sum(m.sum(axis=0) for m in mats).max(initial=0)) if mats else 0
        rows.append({"layer": name, "role": "lif", "neurons": p.neurons, "fan_in": fan_in,
                     "inputs": int(sum(m.shape[0] for m in mats)), "synapses": int(sum(m.sum() for m in mats)),
                     "stored_weights": int(sum(m.sum() for m in mats)), "kernel": 0, "neuron_model": "lif"})
    return check_rows(rows, profile)


def _reference_run(net, res, spikes) -> Run:
    layers = [LayerRun(name, "hidden" if name != net.readout else "output", p.neurons, res.counts[name].sum(1),
                       res.first_step[name]) for name, p in net.populations.items() if p.spiking]
    return Run("reference", res.scores, decide(res.scores), layers, spikes.reshape(len(spikes), -1).sum(1),
               info={"t_total": res.t_total, "time_unit": "step"})


def compile_spiking_graph(graph: nir.NIRGraph, data: Dataset, opts, out, src: str):
    from .encode import encode
    from .frontends.nir import read_spiking_graph, repair_graph
    from .lif.quantize import quantize_lif
    from .lif.reference import simulate
    from .pipeline import Compiled, write_outputs
    from .validate import summarize

    dt = opts.dt or float(get_meta(graph).get("dt", 1.0) or 1.0)
    graph = repair_graph(graph, dt)
    net = read_spiking_graph(graph, dt)
    kind, steps = encoding_of(net, opts)
    x_test = as_model_input(np.asarray(data.x_test), net.input_shape, data.name)
    n = len(x_test) if opts.samples is None else min(opts.samples, len(x_test))
    x_test, y_test = x_test[:n], np.asarray(data.y_test[:n])
    n_out = net.populations[net.readout].neurons
    if n_out < data.n_classes:
        raise InvalidModel(f"the readout {net.readout!r} has {n_out} neurons but dataset {data.name!r} has "
                           f"{data.n_classes} classes")
    spikes = encode(x_test, steps, kind, opts.seed)
    report = {
        "model": {"name": Path(src).stem, "source": src, "input_shape": list(net.input_shape), "kind": "lif",
                  "dt": dt, "encoding": {"type": kind, "steps": steps}, "readout": net.readout_kind,
                  "populations": {k: {"kind": p.kind, "neurons": p.neurons} for k, p in net.populations.items()}},
        "dataset": {"name": data.name, "split": "test", "samples": int(n), "description": data.description},
        "targets": {},
    }
    if net.meta.get("trained_by"):
        report["model"]["trained_by"] = net.meta.get("trained_by")
    res = simulate(net, spikes)
    ref = _reference_run(net, res, spikes)
    report["reference"] = summarize(ref, y_test)
    runs = {"reference": ref}
    qgraph = None
    needs_q = any(t in ("fxsim", "lava") for t in opts.targets)
    if needs_q:
        profile = load_profile(opts.profile or "loihi2").with_weight_bits(opts.bits)
        if "lif" not in profile.neuron_models:
            raise ProfileViolation(net.readout, "neuron model", "lif", " or ".join(profile.neuron_models), profile.name)
        if profile.arithmetic not in ("loihi", "ideal"):
            raise ProfileViolation(net.readout, "arithmetic", profile.arithmetic,
                                   "loihi or ideal (fxsim implements Lava's LIF rules)", profile.name)
        x_cal = as_model_input(np.asarray(data.x_train[: opts.calib_samples or 200]), net.input_shape, data.name)
        qgraph, table = quantize_lif(net, profile, encode(x_cal, steps, kind, opts.seed), opts.headroom_bits)
        mapping = lif_mapping(qgraph, profile)
        report["profile"] = {"name": profile.name, "title": profile.title, "weight_bits": profile.weights.bits,
                             "arithmetic": profile.arithmetic}
    for name in opts.targets:
        if name == "reference":
            continue
        if name == "fxsim":
            from .targets import get_target

            run = get_target("fxsim").run(qgraph, x_test, profile, spikes=spikes)
            summ = summarize(run, y_test, None, ref)
            summ.update(quantization=table, mapping=mapping)
        elif name == "lava":
            from .targets import get_target

            m = n if opts.lava_samples is None else min(n, opts.lava_samples)
            run = get_target("lava").run(qgraph, x_test[:m], profile, spikes=spikes[:m], progress=opts.progress,
                                         fxsim_run=None)
            summ = summarize(run, y_test[:m], None, _subset(ref, m))
            summ.update({k: run.info[k] for k in ("bit_exact_with_fxsim", "first_mismatch", "seconds") if k in run.info})
        elif name == "norse":
            from .targets import get_target

            run = get_target("norse").run(graph, x_test, None, dt=dt, spikes=spikes)
            summ = summarize(run, y_test, None, ref)
            summ.update(run.info.get("summary", {}))
        else:
            raise InvalidModel(f"target {name!r} does not run spiking NIR graphs")
        runs[name] = run
        report["targets"][name] = summ
    rep = Report(report)
    result = Compiled(rep, graphs={"model.nir": graph, "model.q.nir": qgraph}, runs=runs)
    if out is not None:
        m = opts.lava_samples or min(n, 20)
        result.files = write_outputs(Path(out), rep, {"model.nir": graph, "model.q.nir": qgraph}, opts,
                                     lava_spikes=spikes[:m] if qgraph is not None else None)
    return result


def _subset(run: Run, k: int) -> Run:
    from .pipeline import _head

    return _head(run, k)
