"""The ``snncompile`` command line: a thin click layer over the library.

Library errors (:class:`snncompile.errors.SnnCompileError`) become one-line click errors
with exit status 1; heavy imports (torch, lava) happen inside the commands, so
``snncompile --help`` starts fast.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from .errors import SnnCompileError
from .validation.options import check_arch, check_out_file, check_out_folder, click_types

_T = click_types()  # option ranges (snncompile/validation/options.py): finite floats, seed 0..2**32-1


def _ints(text: str | None) -> tuple:
    if not text:
        return ()
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}") from None


def library_errors(fn):
    """Turn our exceptions into click errors (the only place this happens)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SnnCompileError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _say(msg: str) -> None:
    click.echo(msg, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="snncompile")
def main():
    """Compile trained ReLU and spiking networks to neuromorphic hardware, bit-exact and measured."""


@main.command()
@click.option("--dataset", required=True, help="digits | mnist5k | yinyang | idx:<folder> | cifar10:<folder> | "
              "cifar100:<folder> | npz:<file> | imagefolder:<folder>")
@click.option("--arch", required=True, help="784-340-10 (MLP) or e.g. 1x28x28-c8k5p2-m2-c16k5-a2-64-10 (CNN)")
@click.option("--method", type=click.Choice(["ann", "erbp", "bptt", "eventprop"]), default="ann", show_default=True,
              help="ann: ReLU network by backprop (writes ONNX); erbp / bptt (surrogate gradients) / eventprop "
                   "(exact spike-time gradients): spiking network (writes NIR)")
@click.option("--epochs", default=10, show_default=True, type=_T["epochs"])
@click.option("--batch-size", default=None, type=click.IntRange(1), help="default: 64 for ann, 32 for erbp")
@click.option("--lr", default=None, type=_T["float"]("lr"), help="learning rate (default: 1e-3 for ann, eRBP's tuned 5e-4; Yin-Yang's eRBP preset: 2e-3)")
@click.option("--profile", default=None, help="erbp: keep weights on this profile's grid while learning; "
              "bptt: train through the profile's integer dynamics (fake quantization); eventprop: float "
              "training, then fine-tuning on the profile's weight grid")
@click.option("--loss", type=click.Choice(["count", "readout", "first-spike"]), default=None,
              help="bptt: spike-count, LI-readout or first-spike loss (default readout); eventprop: first-spike")
@click.option("--spike-reg", default=0.0, show_default=True, type=_T["float"]("spike_penalty"),
              help="bptt: weight of the hidden spikes-per-neuron penalty")
@click.option("--tau-syn", default=None, type=click.FloatRange(1, min_open=True),
              help="bptt: CubaLIF layers with this synaptic time constant (steps); default LIF (no synaptic state)")
@click.option("--margin", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="erbp: no error while the label output's rate leads every other's by this margin (Yin-Yang's "
                   "preset uses 0.2, train/erbp_job.py PRESETS)")
@click.option("--no-preset", is_flag=True, help="erbp: the rule's plain defaults instead of the dataset's preset "
              "(Yin-Yang: data init, hidden layers at 0.01x eta, centred feedback, 40 steps, margin 0.2)")
@click.option("--seed", default=0, show_default=True, type=_T["seed"])
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="output file (.onnx or .nir)")
@library_errors
def train(dataset, arch, method, epochs, batch_size, lr, profile, loss, spike_reg, tau_syn, margin, no_preset, seed,
          output):
    """Train a network on a bundled dataset."""
    from .data import load_dataset

    if method not in ("bptt", "eventprop") and (loss is not None or spike_reg):
        raise click.BadParameter("--loss and --spike-reg apply to --method bptt / eventprop")
    if method != "bptt" and tau_syn is not None:
        raise click.BadParameter("--tau-syn applies to --method bptt")
    if method != "erbp" and (margin or no_preset):
        raise click.BadParameter("--margin and --no-preset apply to --method erbp")
    check_arch(arch)
    check_out_file(output, (".onnx",) if method == "ann" else ())
    data = load_dataset(dataset)
    if method in ("bptt", "eventprop"):
        from .train.lif_job import train_lif_command

        _, lines = train_lif_command(data, arch, method, epochs, batch_size or 64, lr, profile, seed, output,
                                     loss=loss, spike_reg=spike_reg, tau_syn=tau_syn)
        click.echo("\n".join(lines))
        return
    if method == "erbp":
        from .train.erbp_job import train_erbp_command

        _, lines = train_erbp_command(data, arch, epochs, batch_size or 32, lr, profile, seed, output, margin=margin,
                                      preset=not no_preset)
        click.echo("\n".join(lines))
        return
    from .train.ann import train_ann_command

    if not output.endswith(".onnx"):
        raise click.BadParameter("--method ann writes ONNX: give an output path ending in .onnx")
    click.echo(train_ann_command(data, arch, epochs, batch_size or 64, lr or 1e-3, seed, output))


@main.command(name="compile")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--dataset", required=True, help="digits | mnist5k | yinyang | idx:<folder> | cifar10:<folder> | "
              "cifar100:<folder> | npz:<file> | imagefolder:<folder>")
@click.option("--target", "targets", multiple=True, default=("reference",), show_default=True,
              help="reference | fxsim | lava | norse | xylosim | ... (repeat for several; see snncompile targets)")
@click.option("--profile", default=None, help="hardware profile name or .toml path (default loihi2 for fixed-point targets)")
@click.option("--steps", default=None, type=_T["steps"], help="TTFS: time steps K per layer window [16]")
@click.option("--bits", default=None, type=_T["bits"], help="weight bits (<= the profile's)")
@click.option("--zeta", default=None, type=_T["float"]("zeta"), help="TTFS (ANN input): window margin B = (1+zeta) X [0.5]")
@click.option("--samples", default=None, type=click.IntRange(1), help="evaluate the first N test samples")
@click.option("--vendor-samples", "--lava-samples", "vendor_samples", default=None, type=click.IntRange(1),
              help="vendor simulators (lava, ...): run only the first N evaluated samples")
@click.option("--calib-samples", default=None, type=click.IntRange(1), help="training samples used for calibration")
@click.option("--sweep-bits", default=None, help="comma-separated weight bits to sweep on fxsim, e.g. 2,3,4,6,8")
@click.option("--sweep-steps", default=None, help="comma-separated steps to sweep on fxsim, e.g. 4,8,16,32")
@click.option("--sweep-profiles", default=None, help="comma-separated hardware profiles to sweep, e.g. loihi2,ideal")
@click.option("--sweep-seeds", default=None,
              help="comma-separated seeds: each point calibrates on a random draw of training samples")
@click.option("--ray", "use_ray", is_flag=True,
              help="run the sweep's jobs, and evaluations of >= 10,000 samples in shards of 2,500, as Ray tasks "
                   "(local: 2 CPUs)")
@click.option("--ray-address", default=None, help="with --ray: join this Ray cluster (e.g. auto, ray://host:10001)")
@click.option("--emit", multiple=True, type=click.Choice(["lava", "netx", "xylo"]),
              help="also write a standalone program (lava: Lava processes; netx: lava-dl HDF5; xylo: XyloSim spec)")
@click.option("--weight-scale", type=click.Choice(["auto", "max", "mse"]), default=None,
              help="TTFS: per-layer weight scale: max-abs (nothing clipped) or least squared error; auto (the "
                   "default): mse at <= 4 weight bits, else max; a scale stored by fine-tuning wins")
@click.option("--dt", default=None, type=_T["float"]("dt"),
              help="spiking NIR graphs: time step (default: the graph's, else 1); TTFS with --target norse: 1/steps")
@click.option("--encoding", default=None, type=click.Choice(["regular", "rate", "latency"]),
              help="spiking NIR graphs: input spike code (default: the graph's, else regular)")
@click.option("--sim-steps", default=None, type=_T["sim_steps"],
              help="spiking NIR graphs: input steps per sample (default: the graph's, else 32)")
@click.option("--split-weights", multiple=True,
              help="spiking NIR graphs on Loihi: give this connection ({dst}_from_{src}, as the report names it; "
                   "'all': every one) a second Dense for its rounding residual (about 8 more weight bits; "
                   "default: the graph's weight_split metadata)")
@click.option("--seed", default=0, show_default=True, type=_T["seed"])
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output folder")
@click.option("--quiet", is_flag=True, help="no progress output")
@library_errors
def compile_cmd(model, dataset, targets, profile, steps, bits, zeta, samples, vendor_samples, calib_samples,
                sweep_bits, sweep_steps, sweep_profiles, sweep_seeds, use_ray, ray_address, emit, weight_scale, dt,
                encoding, sim_steps, split_weights, seed, out, quiet):
    """Convert, quantize, map, run on targets and validate; writes model.nir, model.q.nir and the report."""
    from .pipeline import CompileOptions, compile_model

    if not Path(model).is_file():
        raise click.ClickException(f"model file not found: {model}")
    check_out_folder(out)
    opts = CompileOptions(dataset=dataset, targets=tuple(dict.fromkeys(targets)), profile=profile, steps=steps,
                          bits=bits, zeta=zeta, samples=samples, calib_samples=calib_samples, seed=seed,
                          vendor_samples=vendor_samples, emit=tuple(emit), sweep_bits=_ints(sweep_bits),
                          sweep_steps=_ints(sweep_steps), progress=not quiet, dt=dt, encoding=encoding,
                          sim_steps=sim_steps, weight_scale=weight_scale,
                          sweep_profiles=tuple(t.strip() for t in (sweep_profiles or "").split(",") if t.strip()),
                          sweep_seeds=_ints(sweep_seeds), ray=use_ray, ray_address=ray_address,
                          split_weights=tuple(split_weights) or None)
    result = compile_model(model, opts, out=out)
    click.echo(result.report.table())
    if "sweep" in result.report.data:
        click.echo("\nfxsim accuracy, weight bits x steps:\n" + result.report.data["sweep"]["markdown"])
    click.echo(f"\nwrote {', '.join(sorted({p.name for p in result.files.values() if p is not None}))} to {out}")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--dataset", required=True, help="training data used to calibrate the spike windows")
@click.option("--zeta", default=0.5, show_default=True, type=_T["float"]("zeta"))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="model.nir to write")
@library_errors
def convert(model, dataset, zeta, output):
    """Convert a ReLU network (ONNX) to its exact TTFS network (float NIR), without evaluating it."""
    from .data import as_model_input, load_dataset
    from .frontends import load_model
    from .ir import write_nir
    from .ttfs.convert import convert as convert_fn

    check_out_file(output, (".nir",))
    ann = load_model(model)
    data = load_dataset(dataset)
    graph = convert_fn(ann, as_model_input(data.x_train, ann.input_shape, data.name), zeta=zeta)
    write_nir(graph, output)
    click.echo(f"wrote {output}")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--dataset", required=True, help="training data (the test split is only monitored)")
@click.option("--profile", default="loihi2", show_default=True, help="hardware profile name or .toml path")
@click.option("--bits", default=None, type=_T["bits"], help="weight bits (<= the profile's)")
@click.option("--steps", default=16, show_default=True, type=_T["steps"], help="time steps K per window")
@click.option("--mode", type=click.Choice(["qat", "hil"]), default="qat", show_default=True)
@click.option("--target", default="fxsim", show_default=True, type=click.Choice(["fxsim", "lava", "xylosim"]),
              help="hil: the bit-accurate target that runs every forward pass (xylosim: LIF graphs, Xylo profiles)")
@click.option("--epochs", default=None, type=_T["epochs"],
              help="[default: auto: QAT 20 at <= 3 weight bits or K <= 4, else 5; HIL 2; LIF graphs 5]")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=None, type=_T["float"]("lr"),
              help="[default: auto: QAT 1e-3 at <= 3 weight bits or K <= 4, else 1e-4; HIL a tenth of that; LIF "
                   "graphs 1e-3, relative to each layer's largest weight]")
@click.option("--schedule", type=click.Choice(["constant", "cosine"]), default=None,
              help="learning rate over the run [default: auto: cosine decay to 0]")
@click.option("--learn-scales/--no-learn-scales", default=None,
              help="QAT: learn each layer's weight scale (learned step size) [default: auto: on at <= 3 weight "
                   "bits or K <= 4]")
@click.option("--learn-windows/--no-learn-windows", default=None,
              help="QAT: learn each hidden window B (the step B/K of spike times) [default: auto: as --learn-scales]")
@click.option("--spike-penalty", default=0.0, show_default=True, type=_T["float"]("spike_penalty"),
              help="weight of a soft count of firing neurons in the loss (fewer spikes per neuron)")
@click.option("--time-noise", default=0.0, show_default=True, type=click.FloatRange(0, 1e3),
              help="Gaussian spike-time jitter during training, standard deviation in steps of each window")
@click.option("--adapt-window", default=None, type=click.FloatRange(0, 1e3, min_open=True),
              help="the authors' adaptive window: after every step B <- max(B, F x the batch's largest activation) "
                   "(their F = 10)")
@click.option("--window-quantile", default=None, type=click.FloatRange(0, 1, min_open=True),
              help="latency: set every window to this quantile of its layer's positive activations before tuning "
                   "(a finer step B/K, so a smaller K keeps the accuracy)")
@click.option("--window-scale", default=1.0, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="shrink every window B by this factor before fine-tuning")
@click.option("--spike-budget", default=None, type=click.FloatRange(0, 1e3, min_open=True),
              help="search the spike-penalty weight so that fxsim fires at most this many spikes per hidden neuron "
                   "(a bounded number of short runs on a validation split carved from the training data)")
@click.option("--weight-scale", type=click.Choice(["auto", "max", "mse"]), default=None,
              help="per-layer weight scale: max-abs (nothing clipped) or least squared error [default: auto: mse at "
                   "<= 4 weight bits, else max]")
@click.option("--seed", default=0, show_default=True, type=_T["seed"])
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="tuned model .nir")
@click.option("--quiet", is_flag=True)
@library_errors
def finetune(model, dataset, profile, bits, steps, mode, target, epochs, batch_size, lr, schedule, learn_scales,
             learn_windows, spike_penalty, time_noise, adapt_window, window_quantile, window_scale, spike_budget,
             weight_scale, seed, output, quiet):
    """Quantization-aware (qat) or hardware-in-the-loop (hil) fine-tuning of a TTFS or LIF model.nir."""
    from .train.lif_finetune import finetune_lif_command, is_lif_graph

    if Path(model).is_file() and is_lif_graph(model):  # a spiking LIF graph: snncompile/train/lif_finetune.py
        check_out_file(output, (".nir",))
        click.echo(finetune_lif_command(
            model, dataset, profile, bits, output, mode=mode, target=target, epochs=epochs, batch_size=batch_size,
            lr=lr, seed=seed, spike_penalty=spike_penalty, progress=not quiet, ttfs_only={
                "--steps": steps != 16, "--schedule": schedule, "--learn-scales": learn_scales is not None,
                "--learn-windows": learn_windows is not None, "--time-noise": time_noise, "--adapt-window": adapt_window,
                "--window-quantile": window_quantile, "--window-scale": window_scale != 1.0,
                "--spike-budget": spike_budget is not None, "--weight-scale": weight_scale}))
        return
    from .train.finetune import finetune_command

    if not output.endswith(".nir"):
        raise click.BadParameter("the output must be a .nir file", param_hint="-o")
    check_out_file(output, (".nir",))
    click.echo(finetune_command(model, dataset, profile, bits, steps, output, mode=mode, target=target, epochs=epochs,
                                batch_size=batch_size, lr=lr, schedule=schedule, learn_scales=learn_scales,
                                learn_windows=learn_windows, seed=seed, spike_penalty=spike_penalty,
                                time_noise=time_noise, adapt_window=adapt_window, window_quantile=window_quantile,
                                window_scale=window_scale, scale_policy=weight_scale, progress=not quiet,
                                spike_budget=spike_budget))


@main.command()
@click.option("--show", default=None, help="print one profile's TOML")
@library_errors
def profiles(show):
    """List the bundled hardware profiles."""
    from .profile import available_profiles, bundled_dir, load_profile

    if show:
        load_profile(show)
        path = Path(show) if Path(show).is_file() else bundled_dir() / f"{show}.toml"
        click.echo(path.read_text())
        return
    for name in available_profiles():
        p = load_profile(name)
        click.echo(f"{name:<13} {p.weights.bits}-bit weights, {p.neuron.state_bits}-bit state, "
                   f"neurons: {', '.join(p.neuron_models):<9} {p.title}")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@library_errors
def inspect(path, as_json):
    """Print a NIR (or lava-dl netx .net) file's nodes, edges, shapes, parameter ranges and snncompile metadata."""
    import json

    from .inspect_nir import describe, render

    info = describe(path)
    click.echo(json.dumps(info, indent=2) if as_json else render(info))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
