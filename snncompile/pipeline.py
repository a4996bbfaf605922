"""The compile driver: the ordered passes, the targets, validation, and the written outputs.

    load      ONNX / torch module / NIR file        -> AnnModel or NIR graph
    convert   AnnModel + calibration data           -> float TTFS NIR graph   (model.nir)
    quantize  float graph + profile + steps (+bits) -> integer NIR graph     (model.q.nir)
    check     integer graph + profile               -> resource mapping, or ProfileViolation
    run       every requested target on the test split
    validate  accuracy, agreements, spikes, errors   -> Report (report.json, report.md, PNG)

Each pass is a plain function; ``compile_model`` lists them in order.  Nothing is written to
``out`` unless every pass succeeds: outputs go to a temporary folder first and are moved in
at the end.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import Dataset, as_model_input, load_dataset
from .errors import InvalidModel, SnnCompileError
from .nirio import write_nir
from .profile import HwProfile, load_profile
from .report import Report

FIXED_POINT_TARGETS = ("fxsim", "lava")


@dataclass
class CompileOptions:
    dataset: str
    targets: tuple = ("reference",)
    profile: str | None = None
    steps: int = 16
    bits: int | None = None
    zeta: float = 0.5
    samples: int | None = None        # evaluate the first N test samples
    calib_samples: int | None = None  # training samples used to calibrate (None: all)
    headroom_bits: int = 1
    seed: int = 0
    lava_samples: int | None = None   # lava: evaluate only the first N of the evaluated samples
    emit: tuple = ()
    sweep_bits: tuple = ()
    sweep_steps: tuple = ()
    progress: bool = True
    dt: float | None = None           # spiking NIR graphs: time step (default: the graph's, else 1)
    encoding: str | None = None       # spiking NIR graphs: regular | rate | latency (default: the graph's)
    sim_steps: int | None = None      # spiking NIR graphs: input steps (default: the graph's, else 32)
    weight_scale: str = "max"         # per-layer weight scale policy: max | mse


@dataclass
class Compiled:
    report: Report
    files: dict = field(default_factory=dict)
    graphs: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)


# ---- passes ---------------------------------------------------------------------------------

def load_pass(source):
    """ONNX path, NIR path or nn.Module -> ("ann", AnnModel) or ("nir", NIRGraph)."""
    from .frontends import load_model

    if isinstance(source, (str, Path)) and str(source).endswith(".nir"):
        from .nirio import read_nir

        return "nir", read_nir(source, type_check=False)
    return "ann", load_model(source)


def convert_pass(model, data: Dataset, opts: CompileOptions):
    from .ttfs.convert import convert

    x_cal = _calib(data, model.input_shape, opts)
    return convert(model, x_cal, zeta=opts.zeta)


def quantize_pass(graph, data: Dataset, profile: HwProfile, opts: CompileOptions, input_shape):
    from .quantize.ttfs import quantize_ttfs

    return quantize_ttfs(graph, profile, opts.steps, _calib(data, input_shape, opts), opts.headroom_bits,
                         opts.weight_scale)


def check_pass(qgraph, profile: HwProfile) -> dict:
    from .mapping import map_layers
    from .ttfs.graph import parse_ttfs

    return map_layers(parse_ttfs(qgraph).layers, profile)


def _calib(data: Dataset, input_shape, opts: CompileOptions) -> np.ndarray:
    x = data.x_train if opts.calib_samples is None else data.x_train[:opts.calib_samples]
    return as_model_input(np.asarray(x), input_shape, data.name)


# ---- driver ---------------------------------------------------------------------------------

def compile_model(source, opts: CompileOptions, out: str | Path | None = None) -> Compiled:
    """Run the passes, the targets and validation; write outputs to ``out`` if given."""
    import torch

    from .targets.base import _REGISTRY

    torch.manual_seed(opts.seed)
    np.random.seed(opts.seed)
    for t in opts.targets:
        if t not in _REGISTRY:
            raise SnnCompileError(f"unknown target {t!r}; available: {', '.join(_REGISTRY)}")
    data = load_dataset(opts.dataset)
    kind, model = load_pass(source)
    src = str(source) if isinstance(source, (str, Path)) else "module"
    if kind == "nir":
        from .ttfs.graph import is_ttfs_graph

        if not is_ttfs_graph(model):
            from .nir_compile import compile_spiking_graph

            return compile_spiking_graph(model, data, opts, out, src)
        return _compile_ttfs(None, model, data, opts, out, src)
    return _compile_ttfs(model, None, data, opts, out, src)


def _compile_ttfs(model, given_graph, data: Dataset, opts: CompileOptions, out, src: str) -> Compiled:
    """An ANN (converted here) or one of our own TTFS NIR graphs (float or already quantized)."""
    from .ttfs.graph import parse_ttfs

    given_q = given_graph is not None and parse_ttfs(given_graph).quantized
    input_shape = model.input_shape if model is not None else parse_ttfs(given_graph).input_shape
    x_test = as_model_input(np.asarray(data.x_test), input_shape, data.name)
    n = len(x_test) if opts.samples is None else min(opts.samples, len(x_test))
    x_test, y_test = x_test[:n], np.asarray(data.y_test[:n])
    if model is not None:
        _check_classes(model, data)
        graph = convert_pass(model, data, opts)
    else:
        graph = None if given_q else given_graph
    needs_q = any(t in FIXED_POINT_TARGETS for t in opts.targets) or opts.sweep_bits or opts.sweep_steps
    if given_q:
        bad = [t for t in opts.targets if t not in FIXED_POINT_TARGETS]
        if bad:
            raise InvalidModel(f"{src} is a quantized graph (model.q.nir): targets {', '.join(bad)} need the float "
                               "model.nir; use --target fxsim or --target lava")
        qmeta = parse_ttfs(given_graph).meta
        opts = dataclasses.replace(opts, profile=opts.profile or qmeta.get("profile"), steps=int(qmeta["steps"]))
    if needs_q and opts.profile is None:
        opts = dataclasses.replace(opts, profile="loihi2")
    profile = load_profile(opts.profile).with_weight_bits(opts.bits) if opts.profile is not None else None
    qgraph = table = mapping = None
    if given_q:
        qgraph = given_graph
        table = parse_ttfs(qgraph).meta.get("quantization")
        mapping = check_pass(qgraph, profile)
    elif profile is not None and needs_q:
        qgraph, table = quantize_pass(graph, data, profile, opts, input_shape)
        mapping = check_pass(qgraph, profile)

    from .targets import get_target
    from .validate import summarize, ttfs_time_error

    report = {
        "model": {"name": model.name if model is not None else Path(src).stem, "source": src,
                  "input_shape": list(input_shape), "kind": "ttfs"},
        "dataset": {"name": data.name, "split": "test", "samples": int(n), "description": data.description},
        "targets": {},
    }
    ann_dec = None
    if model is not None:
        from .ttfs.convert import ann_logits

        ann_dec = ann_logits(model, x_test).argmax(1)
        report["ann"] = {"accuracy": float(np.mean(ann_dec == y_test))}
    if profile is not None:
        report["profile"] = {"name": profile.name, "title": profile.title, "steps": opts.steps,
                             "weight_bits": profile.weights.bits, "arithmetic": profile.arithmetic}
    runs = {}
    ref = None
    if graph is not None:
        ref = get_target("reference").run(graph, x_test, profile)
        runs["reference"] = ref
        report["reference"] = summarize(ref, y_test, ann_dec)
        if model is not None:
            report["reference"].update(_exactness(model, graph, ref, x_test))
    for name in opts.targets:
        if name == "reference":
            continue
        target = get_target(name)
        if name in FIXED_POINT_TARGETS:
            xs, ys = x_test, y_test
            kwargs = {"progress": opts.progress}
            if name == "lava":
                m = n if opts.lava_samples is None else min(n, opts.lava_samples)
                xs, ys = x_test[:m], y_test[:m]
                kwargs["fxsim_run"] = runs.get("fxsim")
            run = target.run(qgraph, xs, profile, **kwargs)
            k = len(xs)
            summ = summarize(run, ys, None if ann_dec is None else ann_dec[:k], None if ref is None else _head(ref, k))
            summ.update(steps=opts.steps, quantization=table, mapping=mapping)
            if "energy" in run.info:
                summ["energy"] = run.info["energy"]
            summ.update({key: run.info[key] for key in ("bit_exact_with_fxsim", "first_mismatch", "seconds",
                                                        "sample_period") if key in run.info})
            if name == "lava" and "fxsim" in runs:
                summ["fxsim_accuracy_same_samples"] = float(np.mean(runs["fxsim"].decisions[:k] == ys))
            if ref is not None:
                summ["spike_time_error"] = ttfs_time_error(_head(ref, k), parse_ttfs(graph), run, parse_ttfs(qgraph))
        else:
            run = target.run(graph, x_test, profile, dt=opts.dt or 1.0 / opts.steps, reference=ref)
            summ = summarize(run, y_test, ann_dec, ref)
            summ.update(run.info.get("summary", {}))
        runs[name] = run
        report["targets"][name] = summ
    if (opts.sweep_bits or opts.sweep_steps) and graph is not None:
        report["sweep"] = sweep(graph, data, opts, input_shape, x_test, y_test)
    rep = Report(report)
    result = Compiled(rep, graphs={"model.nir": graph, "model.q.nir": qgraph}, runs=runs)
    if out is not None:
        counts = None
        if "lava" in opts.emit and qgraph is not None:
            from .quantize.rounding import encode_counts

            counts = encode_counts(x_test[: opts.lava_samples or min(n, 20)], opts.steps)
        result.files = write_outputs(Path(out), rep, {"model.nir": graph, "model.q.nir": qgraph}, opts, counts)
    return result


def _head(run, k):
    """The first k samples of a run (for comparisons on a subset)."""
    import copy

    if len(run.decisions) == k:
        return run
    r = copy.copy(run)
    r.decisions, r.logits, r.input_spikes = run.decisions[:k], run.logits[:k], run.input_spikes[:k]
    r.layers = [dataclasses.replace(la, spikes=la.spikes[:k], times=None if la.times is None else la.times[:k])
                for la in run.layers]
    return r


def _check_classes(model, data: Dataset):
    from .frontends.canonical import n_outputs

    n_out = n_outputs(model)
    if n_out < data.n_classes:
        raise InvalidModel(f"model {model.name!r} has {n_out} outputs but dataset {data.name!r} has "
                           f"{data.n_classes} classes")


def _exactness(model, graph, ref, x) -> dict:
    """max |(t_max - t_i) - clipped ReLU activation| over all neurons and samples (window units)."""
    from .ttfs.convert import clipped_ann
    from .ttfs.graph import parse_ttfs

    net = parse_ttfs(graph)
    bounds = [layer.meta["B"] for layer in net.layers if layer.role == "hidden"]
    logits, acts = clipped_ann(model, bounds, x)
    worst = 0.0
    for layer, a in zip(net.spiking, acts):
        t = next(la.times for la in ref.layers if la.name == layer.name)
        recovered = np.where(np.isfinite(t), layer.meta["t_max"] - t, 0.0)
        worst = max(worst, float(np.abs(recovered - a).max(initial=0.0)))
    return {"max_activation_error": worst,
            "max_logit_error": float(np.abs(ref.logits - logits).max(initial=0.0)),
            "agreement_with_clipped_ann": float(np.mean(ref.decisions == logits.argmax(1)))}


def sweep(graph, data: Dataset, opts: CompileOptions, input_shape, x_test, y_test) -> dict:
    """fxsim accuracy for every (weight bits, steps) pair; a table and its Markdown."""
    from .quantize.ttfs import quantize_ttfs
    from .targets import get_target

    base = load_profile(opts.profile or "loihi2")
    bits = list(opts.sweep_bits) or [base.weights.bits]
    steps = list(opts.sweep_steps) or [opts.steps]
    x_cal = _calib(data, input_shape, opts)
    fx = get_target("fxsim")
    table = []
    for b in bits:
        prof = base.with_weight_bits(b)
        for k in steps:
            try:
                q, _ = quantize_ttfs(graph, prof, k, x_cal, opts.headroom_bits, opts.weight_scale)
                run = fx.run(q, x_test, prof)
                acc = float(np.mean(run.decisions == y_test))
                spn = float(np.mean(sum(la.spikes for la in run.layers) / sum(la.neurons for la in run.layers)))
                table.append({"bits": b, "steps": k, "accuracy": acc, "spikes_per_neuron": spn})
            except SnnCompileError as exc:
                table.append({"bits": b, "steps": k, "accuracy": None, "error": str(exc)})
    head = "| bits \\ steps | " + " | ".join(str(k) for k in steps) + " |"
    lines = [head, "|---" * (len(steps) + 1) + "|"]
    for b in bits:
        cells = []
        for k in steps:
            row = next(r for r in table if r["bits"] == b and r["steps"] == k)
            cells.append("–" if row["accuracy"] is None else f"{100 * row['accuracy']:.2f} %")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return {"bits": bits, "steps": steps, "results": table, "markdown": "\n".join(lines)}


def sweep_plot(sweep_data: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for b in sweep_data["bits"]:
        rows = [r for r in sweep_data["results"] if r["bits"] == b and r["accuracy"] is not None]
        ax.plot([r["steps"] for r in rows], [100 * r["accuracy"] for r in rows], marker="o", label=f"{b}-bit weights")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("steps per window K")
    ax.set_ylabel("fxsim accuracy (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(out: Path, rep: Report, graphs: dict, opts: CompileOptions, lava_counts=None,
                  lava_spikes=None) -> dict:
    """Write every output into a temporary folder, then move them into ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        files = {}
        for fname, g in graphs.items():
            if g is not None:
                files[fname] = write_nir(g, tmp / fname)
        files.update(rep.write(tmp))
        if "sweep" in rep.data:
            files["sweep_plot"] = sweep_plot(rep.data["sweep"], tmp / "sweep.png")
        if "lava" in opts.emit and graphs.get("model.q.nir") is not None:
            from .targets.lava_export import export_lava

            files["lava"] = export_lava(graphs["model.q.nir"], tmp / "lava", lava_counts, lava_spikes)
        out.mkdir(parents=True, exist_ok=True)
        for item in sorted(tmp.iterdir()):
            dest = out / item.name
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            shutil.move(str(item), dest)
        return {k: out / Path(v).name if v is not None else None for k, v in files.items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
