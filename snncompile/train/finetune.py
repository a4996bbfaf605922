"""TTFS fine-tuning: QAT and hardware-in-the-loop (HIL), a spike budget, and ``snncompile finetune``.

The pieces: :mod:`.finetune_module` (the trainable ReLU-equivalent form of a TTFS graph),
:mod:`.finetune_loop` (:func:`finetune`, the options and their equations), :mod:`.finetune_auto`
(the defaults chosen from the weight bits and K), :mod:`.finetune_budget`
(:func:`finetune_spike_budget`).  This module writes the outputs and runs the command.
"""

from __future__ import annotations

from ..ttfs.graph import parse_ttfs
from .finetune_budget import finetune_spike_budget
from .finetune_loop import MODES, FinetuneResult, evaluate_on_target, finetune, hw_forward, latency_steps
from .finetune_module import TtfsModule

__all__ = ["MODES", "FinetuneResult", "TtfsModule", "evaluate_on_target", "finetune", "finetune_command",
           "finetune_spike_budget", "hw_forward", "latency_steps", "write_finetune_outputs", "chosen_options"]


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


def chosen_options(log: dict) -> str:
    """The options a run used, "(auto)" after those the rule chose: for the summary line."""
    auto = set(log.get("auto", ()))
    parts = [("scale_policy", f"{log['scale_policy']} scales"), ("lr", f"lr {log['lr']:g}"),
             ("epochs", f"{log['epochs']} epochs"), ("schedule", log["schedule"])]
    if log["learn_scales"]:
        parts.append(("learn_scales", "learned scales"))
    if log["learn_windows"]:
        parts.append(("learn_windows", "learned windows"))
    return ", ".join(text + (" (auto)" if key in auto else "") for key, text in parts)


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
        return (f"spike budget {budget:g} per hidden neuron on {prof.name}, {prof.weights.bits}-bit weights, K={steps} "
                f"({chosen_options(res.log)}): "
                f"penalty {s['chosen_penalty']:g} after {len(s['runs'])} run(s) ({'met' if s['met'] else 'NOT met'}); "
                f"validation accuracy {100 * s['baseline_accuracy']:.2f} % -> {100 * s['chosen_accuracy']:.2f} %, "
                f"spikes per hidden neuron {s['baseline_spikes']:.3f} -> {s['chosen_spikes']:.3f}; wrote {output}")
    res = finetune(graph, x, data.y_train, profile=prof, steps=steps, x_monitor=xt, y_monitor=data.y_test, **options)
    stem = write_finetune_outputs(res, output)
    log = res.log
    return (f"{log['mode']} on {prof.name}, {prof.weights.bits}-bit weights, K={steps} ({chosen_options(log)}): fxsim "
            f"accuracy "
            f"({log['monitor']}) {100 * log['accuracy'][0]:.2f} % -> {100 * log['accuracy'][-1]:.2f} %, spikes per "
            f"hidden neuron {log['spikes_per_hidden_neuron'][0]:.3f} -> {log['spikes_per_hidden_neuron'][-1]:.3f}; "
            f"wrote {output}, {stem}.log.json, {stem}.log.png")
