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
@click.option("--dataset", required=True, help="digits | mnist5k | yinyang | idx:<folder>")
@click.option("--arch", required=True, help="784-340-10 (MLP) or e.g. 1x28x28-c8k5p2-m2-c16k5-a2-64-10 (CNN)")
@click.option("--method", type=click.Choice(["ann", "erbp"]), default="ann", show_default=True,
              help="ann: ReLU network by backprop (writes ONNX); erbp: spiking network by eRBP (writes NIR)")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(0))
@click.option("--batch-size", default=None, type=click.IntRange(1), help="default: 64 for ann, 32 for erbp")
@click.option("--lr", default=None, type=float, help="learning rate (default: 1e-3 for ann, eRBP's tuned 5e-4)")
@click.option("--profile", default=None, help="erbp: keep weights on this profile's grid while learning")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="output file (.onnx or .nir)")
@library_errors
def train(dataset, arch, method, epochs, batch_size, lr, profile, seed, output):
    """Train a network on a bundled dataset."""
    from .data import load_dataset

    data = load_dataset(dataset)
    if method == "erbp":
        from .train.erbp_job import train_erbp_command

        _, lines = train_erbp_command(data, arch, epochs, batch_size or 32, lr, profile, seed, output)
        click.echo("\n".join(lines))
        return
    from .train.ann import train_ann_command

    if not output.endswith(".onnx"):
        raise click.BadParameter("--method ann writes ONNX: give an output path ending in .onnx")
    click.echo(train_ann_command(data, arch, epochs, batch_size or 64, lr or 1e-3, seed, output))


@main.command(name="compile")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--dataset", required=True, help="digits | mnist5k | yinyang | idx:<folder>")
@click.option("--target", "targets", multiple=True, default=("reference",), show_default=True,
              help="reference | fxsim | lava | norse (repeat for several)")
@click.option("--profile", default=None, help="hardware profile name or .toml path (default loihi2 for fixed-point targets)")
@click.option("--steps", default=None, type=click.IntRange(1), help="TTFS: time steps K per layer window [16]")
@click.option("--bits", default=None, type=click.IntRange(1), help="weight bits (<= the profile's)")
@click.option("--zeta", default=None, type=click.FloatRange(0), help="TTFS (ANN input): window margin B = (1+zeta) X [0.5]")
@click.option("--samples", default=None, type=click.IntRange(1), help="evaluate the first N test samples")
@click.option("--vendor-samples", "--lava-samples", "vendor_samples", default=None, type=click.IntRange(1),
              help="vendor simulators (lava, ...): run only the first N evaluated samples")
@click.option("--calib-samples", default=None, type=click.IntRange(1), help="training samples used for calibration")
@click.option("--sweep-bits", default=None, help="comma-separated weight bits to sweep on fxsim, e.g. 2,3,4,6,8")
@click.option("--sweep-steps", default=None, help="comma-separated steps to sweep on fxsim, e.g. 4,8,16,32")
@click.option("--emit", multiple=True, type=click.Choice(["lava"]), help="also write a standalone program")
@click.option("--weight-scale", type=click.Choice(["max", "mse"]), default=None,
              help="TTFS: per-layer weight scale: max-abs (nothing clipped, the default) or least squared error "
                   "(better below 4 bits); a scale stored by fine-tuning wins")
@click.option("--dt", default=None, type=click.FloatRange(min=0, min_open=True),
              help="spiking NIR graphs: time step (default: the graph's, else 1); TTFS with --target norse: 1/steps")
@click.option("--encoding", default=None, type=click.Choice(["regular", "rate", "latency"]),
              help="spiking NIR graphs: input spike code (default: the graph's, else regular)")
@click.option("--sim-steps", default=None, type=click.IntRange(1),
              help="spiking NIR graphs: input steps per sample (default: the graph's, else 32)")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output folder")
@click.option("--quiet", is_flag=True, help="no progress output")
@library_errors
def compile_cmd(model, dataset, targets, profile, steps, bits, zeta, samples, vendor_samples, calib_samples,
                sweep_bits, sweep_steps, emit, weight_scale, dt, encoding, sim_steps, seed, out, quiet):
    """Convert, quantize, map, run on targets and validate; writes model.nir, model.q.nir and the report."""
    from .pipeline import CompileOptions, compile_model

    if not Path(model).is_file():
        raise click.ClickException(f"model file not found: {model}")
    opts = CompileOptions(dataset=dataset, targets=tuple(dict.fromkeys(targets)), profile=profile, steps=steps,
                          bits=bits, zeta=zeta, samples=samples, calib_samples=calib_samples, seed=seed,
                          vendor_samples=vendor_samples, emit=tuple(emit), sweep_bits=_ints(sweep_bits),
                          sweep_steps=_ints(sweep_steps), progress=not quiet, dt=dt, encoding=encoding,
                          sim_steps=sim_steps, weight_scale=weight_scale)
    result = compile_model(model, opts, out=out)
    click.echo(result.report.table())
    if "sweep" in result.report.data:
        click.echo("\nfxsim accuracy, weight bits x steps:\n" + result.report.data["sweep"]["markdown"])
    click.echo(f"\nwrote {', '.join(sorted(p.name for p in result.files.values() if p is not None))} to {out}")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--dataset", required=True, help="training data used to calibrate the spike windows")
@click.option("--zeta", default=0.5, show_default=True, type=click.FloatRange(0))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="model.nir to write")
@library_errors
def convert(model, dataset, zeta, output):
    """Convert a ReLU network (ONNX) to its exact TTFS network (float NIR), without evaluating it."""
    from .data import as_model_input, load_dataset
    from .frontends import load_model
    from .ir import write_nir
    from .ttfs.convert import convert as convert_fn

    ann = load_model(model)
    data = load_dataset(dataset)
    graph = convert_fn(ann, as_model_input(data.x_train, ann.input_shape, data.name), zeta=zeta)
    write_nir(graph, output)
    click.echo(f"wrote {output}")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--dataset", required=True, help="training data (the test split is only monitored)")
@click.option("--profile", default="loihi2", show_default=True, help="hardware profile name or .toml path")
@click.option("--bits", default=None, type=click.IntRange(1), help="weight bits (<= the profile's)")
@click.option("--steps", default=16, show_default=True, type=click.IntRange(1), help="time steps K per window")
@click.option("--mode", type=click.Choice(["qat", "hil"]), default="qat", show_default=True)
@click.option("--target", default="fxsim", show_default=True, type=click.Choice(["fxsim", "lava"]),
              help="hil: the bit-accurate target that runs every forward pass")
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(0))
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=1e-4, show_default=True, type=float)
@click.option("--spike-penalty", default=0.0, show_default=True, type=click.FloatRange(0),
              help="weight of a soft count of firing neurons in the loss (fewer spikes per neuron)")
@click.option("--window-scale", default=1.0, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="shrink every window B by this factor before fine-tuning")
@click.option("--weight-scale", type=click.Choice(["max", "mse"]), default="max", show_default=True,
              help="per-layer weight scale: max-abs (nothing clipped) or least squared error (better below 4 bits)")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="tuned model .nir")
@click.option("--quiet", is_flag=True)
@library_errors
def finetune(model, dataset, profile, bits, steps, mode, target, epochs, batch_size, lr, spike_penalty, window_scale,
             weight_scale, seed, output, quiet):
    """Quantization-aware (qat) or hardware-in-the-loop (hil) fine-tuning of a TTFS model.nir."""
    from .train.finetune import finetune_command

    if not output.endswith(".nir"):
        raise click.BadParameter("the output must be a .nir file", param_hint="-o")
    click.echo(finetune_command(model, dataset, profile, bits, steps, output, mode=mode, target=target, epochs=epochs,
                                batch_size=batch_size, lr=lr, seed=seed, spike_penalty=spike_penalty,
                                window_scale=window_scale, scale_policy=weight_scale, progress=not quiet))


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
    """Print a NIR file's nodes, edges, shapes, parameter ranges and snncompile metadata."""
    import json

    from .inspect_nir import describe, render

    info = describe(path)
    click.echo(json.dumps(info, indent=2) if as_json else render(info))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
