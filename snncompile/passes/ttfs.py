"""The TTFS family's passes: a ReLU ANN (converted here) or one of our TTFS graphs (float or
already quantized)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..data import as_model_input
from ..errors import InvalidModel
from .build import Build
from .common import evaluated, reject_options, require_no_bits_without_quantized

DEFAULT_STEPS = 16
DEFAULT_ZETA = 0.5
LIF_ONLY = ("encoding", "sim_steps", "split_weights")


def check_options(build: Build) -> None:
    """Fill the family's defaults; options that only LIF graphs use are errors."""
    reject_options(build, LIF_ONLY, f"applies to spiking (LIF) NIR graphs; {build.src} is a TTFS network "
                                    "(inputs are latency-coded on the K-step grid: use --steps)")
    opts = build.opts
    if build.graph is not None:
        from ..ttfs.graph import parse_ttfs

        net = parse_ttfs(build.graph)
        if net.quantized:
            qm = net.meta
            if opts.steps is not None and opts.steps != int(qm["steps"]):
                raise InvalidModel(f"{build.src} is quantized for K = {qm['steps']} steps; --steps {opts.steps} "
                                   "needs the float model.nir")
            if opts.zeta is not None or opts.weight_scale is not None or build.sweeps:
                raise InvalidModel(f"{build.src} is already quantized: --zeta, --weight-scale and sweeps need the "
                                   "float model.nir")
            build.opts = opts = dataclasses.replace(opts, profile=opts.profile or qm.get("profile"),
                                                    steps=int(qm["steps"]))
            build.qgraph, build.graph = build.graph, None
            build.quantization = qm.get("quantization")
        elif opts.zeta is not None:
            raise InvalidModel(f"--zeta applies when an ANN is converted; {build.src} is already a TTFS graph "
                               "(its windows are fixed)")
    build.opts = opts = dataclasses.replace(opts, steps=opts.steps or DEFAULT_STEPS, zeta=DEFAULT_ZETA
                                            if opts.zeta is None else opts.zeta,
                                            weight_scale=opts.weight_scale or "auto")
    require_no_bits_without_quantized(build)
    if opts.sweep_profiles:
        from ..profile import load_profile

        for name in opts.sweep_profiles:
            load_profile(name)  # an unknown profile fails now, not after the targets ran
    for seed in opts.sweep_seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
            raise InvalidModel(f"--sweep-seeds {seed!r}: every seed must be an integer in 0..{2 ** 32 - 1}")
    build.dt = opts.dt or 1.0 / opts.steps


def convert(build: Build) -> None:
    """The exact ReLU -> TTFS mapping of an ANN source (a TTFS graph source is kept as it is)."""
    from ..ttfs.graph import parse_ttfs

    if build.ann is not None:
        from ..frontends.canonical import n_outputs
        from ..neurobench import ann_metrics
        from ..ttfs.convert import convert as convert_ann

        # before convert(), which turns the model to float64 in place (NeuroBench counts bytes as stored)
        x_eval, y_eval = evaluated(build, as_model_input(np.asarray(build.data.x_test), build.ann.input_shape,
                                                         build.data.name))
        build.report["ann_neurobench"] = ann_metrics(build.ann, x_eval)

        n_out = n_outputs(build.ann)
        if n_out < build.data.n_classes:
            raise InvalidModel(f"model {build.ann.name!r} has {n_out} outputs but dataset {build.data.name!r} has "
                               f"{build.data.n_classes} classes")
        build.input_shape = tuple(build.ann.input_shape)
        build.graph = convert_ann(build.ann, calibration(build), zeta=build.opts.zeta)
    else:
        build.input_shape = parse_ttfs(build.graph if build.graph is not None else build.qgraph).input_shape
    name = build.ann.name if build.ann is not None else Path(build.src).stem
    build.report.update(model={"name": name, "source": build.src, "input_shape": list(build.input_shape),
                               "kind": "ttfs"}, dataset={}, targets={})


def calibration(build: Build) -> np.ndarray:
    data, n = build.data, build.opts.calib_samples
    x = data.x_train if n is None else data.x_train[:n]
    return as_model_input(np.asarray(x), build.input_shape, data.name)


def encode(build: Build) -> None:
    """Test inputs: float values (the reference) and their K-step latency counts (fixed point)."""
    from ..encode import ttfs_counts
    from ..targets.base import Inputs

    x, build.y = evaluated(build, as_model_input(np.asarray(build.data.x_test), build.input_shape, build.data.name))
    K = build.opts.steps
    build.inputs = Inputs(x, f"latency-{K}", ttfs_counts(x, K), K)
    data = build.data
    build.report["dataset"] = {"name": data.name, "split": "test", "samples": int(len(x)),
                               "description": data.description}
    if build.ann is not None:
        from ..ttfs.convert import ann_logits

        build.ann_decisions = ann_logits(build.ann, x).argmax(1)
        acc = float(np.mean(build.ann_decisions == build.y))
        nb = build.report.pop("ann_neurobench", {})
        nb["classification_accuracy"] = acc
        build.report["ann"] = {"accuracy": acc, "samples": int(len(x)), "neurobench": nb}


def quantize(build: Build) -> None:
    from ..profile import load_profile
    from ..quantize.scale_rule import auto_scale_policy

    opts = build.opts
    if not build.needs_quantized and opts.profile is None:
        return
    build.profile = load_profile(opts.profile or "loihi2").with_weight_bits(opts.bits)
    p = build.profile
    policy = auto_scale_policy(opts.weight_scale, p.weights.bits)  # "auto": MSE at <= 4 bits, else max-abs
    build.report["profile"] = {"name": p.name, "title": p.title, "steps": opts.steps, "weight_bits": p.weights.bits,
                               "arithmetic": p.arithmetic, "weight_scale": policy}
    if build.qgraph is None and build.needs_quantized:
        from ..quantize.ttfs import quantize_ttfs

        build.qgraph, build.quantization = quantize_ttfs(build.graph, p, opts.steps, calibration(build),
                                                         opts.headroom_bits, policy)


def check(build: Build) -> None:
    if build.qgraph is not None:
        from ..check import map_layers
        from ..ttfs.graph import parse_ttfs

        build.mapping = map_layers(parse_ttfs(build.qgraph).layers, build.profile)


def validate(build: Build) -> None:
    """Exactness of the conversion (ANN sources) and spike-time errors of every fixed-point run."""
    from ..ttfs.graph import parse_ttfs
    from ..validate import conversion_exactness, ttfs_time_error

    ref = build.runs.get("reference")
    if build.ann is not None and ref is not None:
        build.report["reference"].update(conversion_exactness(build.ann, build.graph, ref, build.inputs.x))
    if ref is None or build.qgraph is None:
        return
    from ..plots import spike_time_scatter, ttfs_time_pairs

    fnet, qnet = parse_ttfs(build.graph), parse_ttfs(build.qgraph)
    for name, summ in build.report["targets"].items():
        run = build.runs[name]
        if run.info.get("time_unit") == "step":
            summ["steps"] = build.opts.steps
            summ["spike_time_error"] = ttfs_time_error(ref.head(run.samples), fnet, run, qnet)
            build.plots[f"spike times, {name} vs reference"] = (
                spike_time_scatter, (ttfs_time_pairs(ref.head(run.samples), fnet, run, qnet),),
                {"target": name, "samples": run.samples})


def sweep(build: Build) -> None:
    if build.sweeps and build.graph is not None:
        from .sweep import sweep as run_sweep

        pool = None
        if build.opts.sweep_seeds:  # seeds draw their calibration samples from the whole training split
            pool = as_model_input(np.asarray(build.data.x_train), build.input_shape, build.data.name)
        build.report["sweep"] = run_sweep(build.graph, build.opts, calibration(build), build.inputs.x, build.y,
                                          x_pool=pool)
