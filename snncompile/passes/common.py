"""Passes shared by both families: load the source, run the targets."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np

from ..errors import InvalidModel, SnnCompileError
from .build import Build

RUN_INFO_KEYS = ("energy", "bit_exact_with_fxsim", "first_mismatch", "seconds", "sample_period")


def load(build: Build) -> None:
    """ONNX path, NIR path or nn.Module -> the ANN or the NIR graph, its family, and the dataset."""
    from ..data import load_dataset
    from ..targets.base import REGISTRY
    from ..validation.options import check_compile_options

    opts = build.opts
    check_compile_options(opts)
    if opts.profile is not None:  # a bad --profile is an error even when no fixed-point target needs it
        from ..profile import load_profile

        load_profile(opts.profile)
    for t in opts.targets:
        if t not in REGISTRY:
            raise SnnCompileError(f"unknown target {t!r}; available: {', '.join(REGISTRY)}")
    source = build.source
    build.src = str(source) if isinstance(source, (str, Path)) else "module"
    if isinstance(source, (str, Path)) and str(source).endswith(".net"):  # lava-dl netx: a quantized LIF graph
        from ..frontends.netx import read_netx

        build.qgraph, build.family = read_netx(source), "lif"
    elif isinstance(source, (str, Path)) and str(source).endswith(".nir"):
        from ..ir import read_nir
        from ..ttfs.graph import is_ttfs_graph

        graph = read_nir(source, type_check=False)
        check_graph(graph, str(source), opts)
        build.family = "ttfs" if is_ttfs_graph(graph) else "lif"
        build.graph = graph
    else:
        from ..frontends import load_model

        build.ann = load_model(source)
        build.family = "ttfs"
    build.data = load_dataset(opts.dataset)


def check_graph(graph, where: str, opts) -> None:
    """Validate a NIR graph read from ``where`` before any pass (snncompile.validation): structure,
    values, metadata schema; a quantized graph against its profile; foreign time constants against dt."""
    from ..validation.nir_graph import NEURON_TYPES, validate_graph
    from ..validation.quantized import is_quantized, profile_of, verify_quantized
    from ..validation.timeconst import check_time_constants

    gm = validate_graph(graph, where)
    if is_quantized(gm):
        verify_quantized(graph, profile_of(gm, opts.profile, where), where)
    elif gm.get("format") != "snncompile-ttfs":
        dt = opts.dt or float(gm.get("dt", 1.0) or 1.0)
        for name, node in graph.nodes.items():
            if isinstance(node, NEURON_TYPES):
                check_time_constants(name, type(node).__name__, vars(node), dt, where)


def reject_options(build: Build, keys: tuple, why: str) -> None:
    """InvalidModel for the first option in ``keys`` that was given (options the family has no use for)."""
    for key in keys:
        if getattr(build.opts, key) is not None:
            raise InvalidModel(f"--{key.replace('_', '-')} {why}")


def require_no_bits_without_quantized(build: Build) -> None:
    if build.opts.bits is not None and not build.needs_quantized:
        raise InvalidModel("--bits sets the quantized weights: add a fixed-point target (e.g. --target fxsim)")


def evaluated(build: Build, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first ``--samples`` test samples and their labels."""
    n = len(x) if build.opts.samples is None else min(build.opts.samples, len(x))
    return x[:n], np.asarray(build.data.y_test[:n])


def run_targets(build: Build) -> None:
    """Run the float reference (when there is a float graph) and every requested target, each on
    the graph of the kind it declares; summarize each run into the report."""
    from ..scaleout import ray_session
    from ..targets.shard import SHARD_MIN_SAMPLES

    opts = build.opts
    options = {"progress": opts.progress, "dt": build.dt}
    shard = opts.ray and len(build.inputs) >= (opts.shard_min or SHARD_MIN_SAMPLES)
    if opts.ray and not shard and not build.sweeps:
        raise InvalidModel(f"--ray distributes sweep points and evaluations of at least "
                           f"{opts.shard_min or SHARD_MIN_SAMPLES} samples; this compile evaluates {len(build.inputs)} "
                           "samples and sweeps nothing (drop --ray, or give --sweep-* or more --samples)")
    with ray_session(opts.ray_address) if shard else nullcontext():
        _run_all(build, options, shard)


def _run_all(build: Build, options: dict, shard: bool) -> None:
    from ..targets.base import RunRequest, get_target
    from ..targets.shard import SHARD_SAMPLES, run_sharded
    from ..validate import summarize

    opts, fam = build.opts, build.family

    def run_one(target, request):
        if shard and target.shardable:
            return run_sharded(target.name, request, shard_size=opts.shard_size or SHARD_SAMPLES, use_ray=True,
                               address=opts.ray_address, progress=opts.progress)
        return target.run(request)

    ref = None
    if build.graph is not None:
        ref = run_one(get_target("reference"), RunRequest(build.graph, fam, build.profile, build.inputs,
                                                          options=options))
        build.runs["reference"] = ref
        build.report["reference"] = summarize(ref, build.y, build.ann_decisions)
        build.report["reference"]["run_seconds"] = ref.run_seconds
        build.report["reference"]["neurobench"] = neurobench_of(build, ref, build.graph,
                                                                build.report["reference"].get("accuracy"))
    for name in opts.targets:
        if name == "reference":
            continue
        target = get_target(name)
        kind = "quantized" if "quantized" in target.kinds else "float"
        graph = build.qgraph if kind == "quantized" else build.graph
        if graph is None:
            raise InvalidModel(f"target {name!r} runs the float model.nir; {build.src} is a quantized graph "
                               "(use a fixed-point target such as fxsim)")
        target.require(fam, kind)
        samples = opts.vendor_samples if target.checks_fxsim else None
        run = run_one(target, RunRequest(graph, fam, build.profile, build.inputs, samples, options, reference=ref))
        k = run.samples
        ann = None if build.ann_decisions is None else build.ann_decisions[:k]
        summ = summarize(run, build.y[:k], ann, None if ref is None else ref.head(k))
        summ["run_seconds"] = run.run_seconds
        summ.update({key: run.info[key] for key in RUN_INFO_KEYS if key in run.info})
        summ.update(run.info.get("summary", {}))
        if kind == "quantized":
            summ.update(quantization=build.quantization, mapping=build.mapping)
        if target.checks_fxsim and "fxsim" in build.runs:
            summ["fxsim_accuracy_same_samples"] = float(np.mean(build.runs["fxsim"].decisions[:k] == build.y[:k]))
        summ["neurobench"] = neurobench_of(build, run, graph, summ.get("accuracy"))
        build.runs[name] = run
        build.report.setdefault("targets", {})[name] = summ


def neurobench_of(build: Build, run, graph, accuracy) -> dict:
    """NeuroBench metrics of a run (:mod:`snncompile.neurobench`), from the run itself."""
    from .. import neurobench

    k = run.samples
    if build.family == "ttfs":
        layers = neurobench.ttfs_synapse_layers(graph)
        spikes = build.inputs.spikes if run.info.get("time_unit") == "step" else build.inputs.x
        inputs = (np.asarray(spikes[:k]).reshape(k, -1) > 0).astype(np.int64)
    else:
        layers = neurobench.lif_synapse_layers(graph, dt=build.dt or 1.0)
        inputs = np.asarray(build.inputs.spikes[:k]).reshape(k, build.inputs.spikes.shape[1], -1).sum(axis=1)
    try:
        return neurobench.metrics(layers, run, accuracy, input_counts=inputs)
    except ValueError as exc:  # a run that does not report every population: no metrics, and why
        return {"unavailable": str(exc)}
