"""The compile driver: one list of named passes per neuron family, a verify step between them.

    ttfs (a ReLU ANN, or one of our TTFS graphs)      lif (a spiking NIR graph: norse, snnTorch, eRBP, ...)
    load       ONNX / nn.Module / NIR file            load       NIR file
    options    reject options the family ignores     options    reject options the family ignores
    convert    exact ReLU -> TTFS (model.nir)        convert    repair foreign exports, read dt
    encode     test inputs, encoded once             encode     test inputs, encoded once
    quantize   float graph -> model.q.nir            quantize   float graph -> model.q.nir
    check      resources against the profile         check      resources against the profile
    run        every requested target                run        every requested target
    validate   accuracy, exactness, spike times      validate   accuracy, agreement
    sweep      fxsim over bits x steps (optional)
    write      model.nir, model.q.nir, report, emits (atomic: all or nothing)

Each pass is a plain function ``pass_(build) -> None`` of :mod:`snncompile.passes`; after each one
:func:`verify` checks what it promised (graph invariants, complete metadata).  The driver never
branches on a target's name: targets declare the families and graph kinds they run
(:mod:`snncompile.targets.base`).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InvalidModel
from .passes import common, lif, ttfs
from .passes.build import Build, CompileOptions
from .report import Report

PASSES = {
    "ttfs": [("options", ttfs.check_options), ("convert", ttfs.convert), ("encode", ttfs.encode),
             ("quantize", ttfs.quantize), ("check", ttfs.check), ("run", common.run_targets),
             ("validate", ttfs.validate), ("sweep", ttfs.sweep)],
    "lif": [("options", lif.check_options), ("convert", lif.convert), ("encode", lif.encode),
            ("quantize", lif.quantize), ("check", lif.check), ("run", common.run_targets),
            ("validate", lif.validate)],
}


@dataclass
class Compiled:
    report: Report
    files: dict = field(default_factory=dict)
    graphs: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)
    inputs: object = None  # the evaluated test samples, encoded once (targets.base.Inputs)


def compile_model(source, opts: CompileOptions, out: str | Path | None = None) -> Compiled:
    """Run the passes of the source's family, then write the outputs to ``out`` (if given)."""
    import torch

    torch.manual_seed(opts.seed)
    np.random.seed(opts.seed)
    build = Build(opts=opts, source=source)
    common.load(build)
    verify(build, "load")
    for name, fn in PASSES[build.family]:
        fn(build)
        verify(build, name)
    rep = Report(build.report)
    graphs = {"model.nir": build.graph, "model.q.nir": build.qgraph}
    result = Compiled(rep, graphs=graphs, runs=build.runs, inputs=build.inputs)
    if out is not None:
        result.files = write_outputs(Path(out), rep, graphs, build)
    return result


def verify(build: Build, after: str) -> None:
    """What each pass promises; an AssertionError here is a bug in snncompile, not bad input."""
    from .ir import get_meta

    def need(cond, what):
        if not cond:
            raise AssertionError(f"after the {after} pass: {what}")

    need(build.family in PASSES, f"unknown family {build.family!r}")
    if after in ("convert", "quantize"):
        need(build.graph is not None or build.qgraph is not None, "no graph")
    if build.qgraph is not None and after == "quantize":
        meta = get_meta(build.qgraph)
        need(meta.get("quantized") and meta.get("profile"), "model.q.nir lacks quantized/profile metadata")
        for key in ("state_bits", "act_shift", "weight_bits", "arithmetic"):
            need(key in meta, f"model.q.nir metadata lacks {key!r}")
    if after == "encode":
        need(build.inputs is not None and len(build.inputs) == len(build.y), "inputs and labels differ in length")
    if after == "run":
        for name, run in build.runs.items():
            need(run.samples <= len(build.y), f"target {name!r} ran more samples than were encoded")


def draw_plots(build: Build, folder: Path) -> dict:
    """The run plots (a spike raster of sample 0 per run, the passes' own plots) as PNGs in ``folder``."""
    from .plots import raster_data, raster_plot

    out = {}
    for name, run in build.runs.items():
        path = folder / f"raster_{name}.png"
        unit = run.info.get("time_unit", "step")
        out[f"spike raster, {name}"] = raster_plot(raster_data(run, 0), path, target=name, samples=run.samples,
                                                   time_unit=unit, t_total=run.info.get("t_total"))
    for title, (fn, args, kwargs) in build.plots.items():
        slug = "".join(c if c.isalnum() else "_" for c in title).strip("_")
        out[title] = fn(*args, folder / f"{slug}.png", **kwargs)
    return out


def write_outputs(out: Path, rep: Report, graphs: dict, build: Build) -> dict:
    """Write every output into a temporary folder, then move them into ``out``: nothing is written
    to ``out`` unless everything succeeded."""
    from .ir import write_nir
    from .targets.base import get_emitter

    if out.exists() and not out.is_dir():
        raise InvalidModel(f"--out {out}: exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        files = {}
        for fname, g in graphs.items():
            if g is not None:
                files[fname] = write_nir(g, tmp / fname)
        files.update(rep.write(tmp, plots=draw_plots(build, tmp)))
        for name in build.opts.emit:
            if build.qgraph is None:
                raise InvalidModel(f"--emit {name} needs a quantized graph: add a fixed-point target or --profile")
            emit = get_emitter(name)
            files[name] = emit(build.qgraph, tmp / name, build.family, build.inputs.head(build.emit_samples))
        out.mkdir(parents=True, exist_ok=True)
        for item in sorted(tmp.iterdir()):
            dest = out / item.name
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            shutil.move(str(item), dest)
        return {k: out / Path(v).name if v is not None else None for k, v in files.items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["PASSES", "Compiled", "CompileOptions", "compile_model", "verify", "write_outputs"]
