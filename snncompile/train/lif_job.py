"""``snncompile train --method bptt | eventprop`` as one library call: train an LIF chain, evaluate
it (float and, with ``--profile``, the deployed integer forward pass = fxsim), write NIR.

Writes ``output`` (.nir, the graph ``snncompile compile`` runs) and ``<output stem>.train.json``
(history, accuracies, hyper-parameters, timings).  The final weights are those of the last epoch
(BPTT) or of the best validation epoch (EventProp, when the dataset has a validation split:
yinyang); the test split is used only for the final report.  EventProp with ``--profile``:
float training, then ``QAT_EPOCHS`` epochs with the weights on the profile's grid
(:func:`snncompile.train.eventprop_deploy.finetune_on_grid`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InvalidModel
from ..ir import json_clean, write_text

METHODS = ("bptt", "eventprop")


def train_lif_command(data, arch: str, method: str, epochs: int, batch_size: int, lr: float | None,
                      profile: str | None, seed: int, output: str, loss: str | None = None,
                      spike_reg: float = 0.0, steps: int | None = None,
                      tau_syn: float | None = None) -> tuple[dict, list[str]]:
    """Run the whole command; returns the log dict (also written next to ``output``) and the lines
    the CLI prints."""
    from ..data import as_model_input
    from ..encode import encode
    from ..ir import write_nir

    out = Path(output)
    if out.suffix != ".nir":
        raise InvalidModel(f"--method {method} writes NIR: give an output path ending in .nir, got {output!r}")
    if method not in METHODS:
        raise InvalidModel(f"--method {method!r}: one of {', '.join(METHODS)}")
    try:
        sizes = [int(t) for t in arch.split("-")]
    except ValueError:
        raise InvalidModel(f"--method {method} trains fully connected chains like 4-120-3; got {arch!r}") from None
    input_shape = (sizes[0],)
    flat = lambda a: as_model_input(np.asarray(a), input_shape, data.name).reshape(len(a), -1)  # noqa: E731
    x, xt = flat(data.x_train), flat(data.x_test)
    xv, yv = (flat(data.x_val), data.y_val) if data.x_val is not None else (None, None)
    hyper = {}
    if lr is not None:
        hyper["lr"] = float(lr)
    if steps is not None:
        hyper["steps"] = int(steps)
    if method == "bptt":
        from .bptt import bptt_to_nir, decisions, evaluate_chain, train_bptt

        if loss is not None:
            hyper["loss"] = loss
        if tau_syn is not None:
            hyper["tau_syn"] = float(tau_syn)
        res = train_bptt(x, data.y_train, arch=arch, epochs=epochs, batch_size=batch_size, seed=seed,
                         profile=profile, x_val=xv, y_val=yv, dataset_name=data.name, input_shape=input_shape,
                         spike_reg=float(spike_reg), **hyper)
        hp = res.hyper
        xs = encode(xt, hp.steps, hp.encoding, seed)
        scores, counts = evaluate_chain(res.weights, xs, hp)
        res.accuracy["test"] = float((decisions(scores) == data.y_test).mean())
        qp = res.extra.get("quant")
        if qp is not None:
            dscores, _ = evaluate_chain(res.weights, xs, hp, qp)
            res.accuracy["deployed_test"] = float((decisions(dscores) == data.y_test).mean())
            res.accuracy["deployed_agreement_test"] = float((decisions(dscores) == decisions(scores)).mean())
        graph = bptt_to_nir(res, input_shape, data.name)
        spiking = counts if hp.loss != "readout" else counts[:-1]
        n_spk = sum(c.shape[1] for c in spiking)
        spn = float(sum(c.sum(1) for c in spiking).mean() / max(n_spk, 1))
    else:
        if spike_reg or tau_syn is not None:
            raise InvalidModel("--spike-reg and --tau-syn apply to --method bptt")
        if loss not in (None, "first-spike"):
            raise InvalidModel(f"--method eventprop trains with the first-spike loss; --loss {loss} is for bptt")
        from .eventprop import train_eventprop
        from .eventprop_deploy import evaluate_eventprop, eventprop_to_nir, finetune_on_grid

        res = train_eventprop(x, data.y_train, arch=arch, epochs=epochs, batch_size=batch_size, seed=seed,
                              profile=profile, x_val=xv, y_val=yv, dataset_name=data.name, **hyper)
        if profile is not None:  # fine-tune with the weights on the profile's grid (eventprop_deploy)
            res = finetune_on_grid(res, x, data.y_train, profile, x_val=xv, y_val=yv)
        if "inhibition" not in res.extra:  # calibrate it (finetune_on_grid calibrated and kept it)
            eventprop_to_nir(res, input_shape, data.name, x_calib=x)
        acc, spn, extra = evaluate_eventprop(res, xt, data.y_test, x_calib=x)
        res.accuracy["test"] = acc
        res.accuracy.update({f"{k}_test": v for k, v in extra.items()})
        graph = eventprop_to_nir(res, input_shape, data.name)  # with the test accuracies in its metadata
    write_nir(graph, out)
    log = {"dataset": data.name, "arch": arch, "method": method, "monitor_split": "val" if xv is not None else None,
           method: {"accuracy": dict(res.accuracy), "history": res.history, "hyper": res.describe(),
                    "train_time_s": res.train_time_s, "spikes_per_neuron_test": spn},
           "output": str(out)}
    restarts = {k: res.extra[k] for k in ("restart_val", "train_seed") if k in getattr(res, "extra", {})}
    if restarts:  # eventprop: the validation accuracy of every start and the seed of the one kept
        log[method]["restarts"] = restarts
    log_path = out.with_name(out.stem + ".train.json")
    write_text(log_path, json.dumps(json_clean(log, nonfinite=lambda x: None), indent=1) + "\n")
    acc = res.accuracy
    dep = ""
    if "deployed_test" in acc:
        dep = (f"; deployed on {profile} (integer forward = fxsim): test {100 * acc['deployed_test']:.2f} %, "
               f"agreement with float {100 * acc['deployed_agreement_test']:.2f} %")
    elif "deployed_accuracy_test" in acc:
        dep = (f"; deployed on {profile} fxsim (the graph compile runs): test {100 * acc['deployed_accuracy_test']:.2f} %, "
               f"agreement with the continuous model {100 * acc['deployed_agreement_test']:.2f} %")
    lines = [f"{method.upper() if method == 'bptt' else 'EventProp'} {arch} on {data.name}: train "
             f"{100 * acc['train']:.2f} %, test {100 * acc['test']:.2f} %{dep} ({epochs} epochs, "
             f"{res.train_time_s:.1f} s, {spn:.2f} spikes/neuron)",
             f"wrote {out} and {log_path}"]
    return log, lines


__all__ = ["METHODS", "train_lif_command"]
