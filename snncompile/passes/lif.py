"""The LIF family's passes: spiking NIR graphs (norse / snnTorch / sinabs / rockpool exports,
eRBP-trained networks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import as_model_input
from ..errors import InvalidModel, ProfileViolation
from .build import Build
from .common import evaluated, reject_options, require_no_bits_without_quantized

DEFAULT_STEPS = 32
DEFAULT_CALIB_SAMPLES = 200
TTFS_ONLY = ("steps", "zeta", "weight_scale")
# the LIF quantizer and resource check of each arithmetic (profile.arithmetic) fxsim implements
ARITHMETICS = {"loihi": ("quantize_lif", "lif_mapping"), "ideal": ("quantize_lif", "lif_mapping"),
               "xylo": ("quantize_xylo", "xylo_mapping")}


def check_options(build: Build) -> None:
    """Options that only TTFS networks use are errors here."""
    reject_options(build, TTFS_ONLY, f"applies to TTFS networks; {build.src} is a spiking (LIF) NIR graph "
                                     "(use --sim-steps for the input length)")
    if build.sweeps:
        raise InvalidModel(f"--sweep-* sweep TTFS networks; {build.src} is a spiking (LIF) NIR graph")
    require_no_bits_without_quantized(build)


def convert(build: Build) -> None:
    """Repair a foreign export (scalar parameters, missing types) and read its populations at dt."""
    from ..frontends.nir import read_spiking_graph, repair_graph
    from ..ir import get_meta

    if build.graph is None:  # an already-quantized source (a netx .net file)
        return convert_quantized(build)
    build.dt = build.opts.dt or float(get_meta(build.graph).get("dt", 1.0) or 1.0)
    build.graph = repair_graph(build.graph, build.dt)
    net = build.net = read_spiking_graph(build.graph, build.dt)
    build.input_shape = tuple(net.input_shape)
    n_out = net.populations[net.readout].neurons
    if n_out < build.data.n_classes:
        raise InvalidModel(f"the readout {net.readout!r} has {n_out} neurons but dataset {build.data.name!r} has "
                           f"{build.data.n_classes} classes")
    kind, steps = encoding_of(build)
    build.report.update(model={
        "name": Path(build.src).stem, "source": build.src, "input_shape": list(net.input_shape), "kind": "lif",
        "dt": build.dt, "encoding": {"type": kind, "steps": steps}, "readout": net.readout_kind,
        "populations": {k: {"kind": p.kind, "neurons": p.neurons} for k, p in net.populations.items()}},
        dataset={}, targets={})
    if net.meta.get("trained_by"):
        build.report["model"]["trained_by"] = net.meta.get("trained_by")


def convert_quantized(build: Build) -> None:
    """A source that is already a quantized LIF graph (``build.qgraph``; ``build.graph`` stays None,
    so float targets give their clear error): read dt, input shape and the profile from its metadata."""
    from ..ir import get_meta
    from ..profile import load_profile

    meta, opts = get_meta(build.qgraph), build.opts
    if opts.bits is not None:
        raise InvalidModel(f"--bits: {build.src} is already quantized (its integer weights are fixed)")
    if "reference" in opts.targets:
        raise InvalidModel(f"target 'reference' runs the float model.nir; {build.src} is already quantized "
                           "(use --target fxsim, netx or lava)")
    build.dt = opts.dt or float(meta.get("dt", 1.0) or 1.0)
    build.input_shape = tuple(meta["input_shape"])
    n_out = int(get_meta(build.qgraph.nodes[meta["readout"]])["shape"][0])
    if n_out < build.data.n_classes:
        raise InvalidModel(f"the readout {meta['readout']!r} has {n_out} neurons but dataset {build.data.name!r} has "
                           f"{build.data.n_classes} classes")
    build.profile = load_profile(opts.profile or meta.get("profile") or "loihi2")
    if build.profile.arithmetic != meta.get("arithmetic"):
        raise InvalidModel(f"--profile {build.profile.name}: {build.src} holds {meta.get('arithmetic')!r} integers, "
                           f"the profile's arithmetic is {build.profile.arithmetic!r}")
    build.quantization = meta.get("quantization") or []
    kind, steps = encoding_of(build)
    build.report.update(model={
        "name": Path(build.src).stem, "source": build.src, "input_shape": list(build.input_shape), "kind": "lif",
        "dt": build.dt, "encoding": {"type": kind, "steps": steps}, "readout": meta.get("readout_kind"),
        "quantized_source": meta.get("source_format", "nir"),
        "populations": {k: {"kind": "CubaLIF", "neurons": int(get_meta(build.qgraph.nodes[k])["shape"][0])}
                        for k in meta["populations"]}}, dataset={}, targets={},
        profile={"name": build.profile.name, "title": build.profile.title, "weight_bits": int(meta["weight_bits"]),
                 "arithmetic": meta.get("arithmetic")})


def encoding_of(build: Build) -> tuple[str, int]:
    """The input code and its length: the options, else the graph's recorded encoder, else regular/32."""
    from ..ir import get_meta

    enc = (build.net.meta if build.net is not None else get_meta(build.qgraph)).get("encoding")
    enc = enc if isinstance(enc, dict) else {}
    kind = build.opts.encoding or enc.get("type") or "regular"
    return kind, int(build.opts.sim_steps or enc.get("steps") or DEFAULT_STEPS)


def encode(build: Build) -> None:
    from ..encode import encode as encode_spikes
    from ..targets.base import Inputs

    x, build.y = evaluated(build, as_model_input(np.asarray(build.data.x_test), build.input_shape, build.data.name))
    kind, steps = encoding_of(build)
    build.inputs = Inputs(x, kind, encode_spikes(x, steps, kind, build.opts.seed), steps)
    data = build.data
    build.report["dataset"] = {"name": data.name, "split": "test", "samples": int(len(x)),
                               "description": data.description}


def quantize(build: Build) -> None:
    from .. import quantize
    from ..encode import encode as encode_spikes
    from ..profile import load_profile

    opts = build.opts
    if not build.needs_quantized or build.graph is None:  # nothing to do, or already quantized (convert_quantized)
        return
    profile = build.profile = load_profile(opts.profile or "loihi2").with_weight_bits(opts.bits)
    net = build.net
    if "lif" not in profile.neuron_models:
        raise ProfileViolation(net.readout, "neuron model", "lif", " or ".join(profile.neuron_models), profile.name)
    if profile.arithmetic not in ARITHMETICS:
        raise ProfileViolation(net.readout, "arithmetic", profile.arithmetic,
                               " or ".join(ARITHMETICS) + " (the LIF arithmetics fxsim implements)", profile.name)
    kind, steps = encoding_of(build)
    x_cal = as_model_input(np.asarray(build.data.x_train[: opts.calib_samples or DEFAULT_CALIB_SAMPLES]),
                           net.input_shape, build.data.name)
    quantizer = getattr(quantize, ARITHMETICS[profile.arithmetic][0])
    split = {} if opts.split_weights is None else {"split": opts.split_weights}
    if split and quantizer is not quantize.quantize_lif:
        raise InvalidModel(f"--split-weights: profile {profile.name}'s {profile.arithmetic} arithmetic has one "
                           "weight per synapse (split connections are for Loihi's Dense weight exponents)")
    build.qgraph, build.quantization = quantizer(net, profile, encode_spikes(x_cal, steps, kind, opts.seed),
                                                 opts.headroom_bits, **split)
    build.report["profile"] = {"name": profile.name, "title": profile.title, "weight_bits": profile.weights.bits,
                               "arithmetic": profile.arithmetic}


def check(build: Build) -> None:
    if build.qgraph is not None:
        from .. import check as checks

        build.mapping = getattr(checks, ARITHMETICS[build.profile.arithmetic][1])(build.qgraph, build.profile)


def validate(build: Build) -> None:
    """Per spiking population, the share of (sample, neuron) whose first spike step equals the float
    reference's (both silent counts as equal), for every target run."""
    ref = build.runs.get("reference")
    if ref is None:
        return
    for name, summ in build.report["targets"].items():
        run = build.runs[name]
        mine = {la.name: la.times for la in ref.head(run.samples).layers}
        summ["first_spike_agreement_with_reference"] = {
            la.name: float(np.mean(la.times == mine[la.name])) for la in run.layers
            if la.name in mine and la.times is not None and la.times.shape == mine[la.name].shape}
