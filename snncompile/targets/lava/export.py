"""``--emit lava``: a standalone Lava program for a quantized TTFS or LIF graph.

:func:`export_lava` writes a folder that needs only lava-nc, numpy and scipy:

* ``params.npz``: the network's Lava plan (:mod:`.plan`) in integers, written by
  :func:`.params.save_plan` (per population: TTFS connection weights as Lava MIXED parts, bias,
  slope, threshold and step schedule; LIF: du, dv, vth, bias_mant, bias_exp and per connection
  its source, target, delay, weight_exp and integer weights).  Nothing data-specific.
* ``snnrt/``: an exact copy of the modules the program runs -- :mod:`.standalone` (the program),
  :mod:`.params`, :mod:`.compat` (the Python 3.11 import fix), :mod:`.ttfs_runtime` or
  :mod:`.lif_runtime`, and the neuron, arithmetic and spike modules they import -- with the
  package layout kept, so the copy and snncompile run the same code.
* ``run_lava.py``: three lines that run ``snnrt``'s standalone program on ``params.npz``.
* ``inputs.npz`` (when samples are given): TTFS counts (array ``counts``) or LIF spike rasters
  (array ``spikes``).
* ``README.md``.

The folder is written to a temporary sibling first and then renamed into place.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from ...errors import InvalidModel
from ...ir import get_meta
from .params import save_plan
from .plan import LIF_FORMAT, lif_plan, ttfs_plan

# the modules the standalone program runs, relative to the snncompile package (copied whole)
RUNTIME = ("errors.py", "arith.py", "spikes.py", "neurons/ttfs.py", "neurons/lif.py", "targets/lava/compat.py",
           "targets/lava/params.py", "targets/lava/runner.py", "targets/lava/ttfs_runtime.py", "targets/lava/lif_runtime.py",
           "targets/lava/standalone.py")

LAUNCHER = """#!/usr/bin/env python3
\"\"\"Run the exported network on Lava: see README.md (python run_lava.py --help).\"\"\"
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from snnrt.targets.lava.standalone import main  # noqa: E402

sys.exit(main(["--params", os.path.join(HERE, "params.npz")] + sys.argv[1:]))
"""


def runtime_files() -> dict:
    """snnrt/<path> -> source text of every runtime module, plus empty package markers."""
    pkg = Path(__file__).resolve().parents[2]
    files = {f"snnrt/{rel}": (pkg / rel).read_text() for rel in RUNTIME}
    for init in ("", "neurons/", "targets/", "targets/lava/"):
        files[f"snnrt/{init}__init__.py"] = '"""Runtime modules copied from snncompile by --emit lava."""\n'
    return files


_RUN = """```
pip install numpy scipy
pip install --no-deps --ignore-requires-python lava-nc==0.10.0 'asteval>=0.9.31,<0.10' 'networkx<=2.8.7'
python run_lava.py                  # inputs.npz, else one all-zero sample
python run_lava.py --inputs my.npz  # your own {inputs}
```"""  # the install-and-run block of both READMEs

_README = """# Lava program for `{model}`

A quantized time-to-first-spike network exported by snncompile (`--emit lava`), runnable on
Intel's Lava simulator (lava-nc 0.10.0, `Loihi2SimCfg(select_tag="fixed_pt")`) without snncompile.

| file | what |
|---|---|
| `params.npz` | the network in integers: per population its Lava connection weights (dense or CSR arrays, one or more parts, each with its `weight_exp`), bias, slope, threshold and step schedule; input shape, K = {steps} steps per window, T = {t_total} steps per sample, arithmetic (`meta_json`) |
| `run_lava.py`, `snnrt/` | the program: snncompile's own Lava modules, copied whole (the Python 3.11 import fix for Lava, the TTFS neuron as a Lava Process with a bit-accurate ProcessModel); it rebuilds RingBuffer -> Dense/Sparse -> TtfsNeuron -> ... and runs |
| `inputs.npz` | (if present) encoded test samples: array `counts` (N, {shape}), integers 0..{steps} |
| `outputs.npz` | written by `run_lava.py`: `decisions`, `readout_v` (integer readout potentials at step T), `spike_steps_<population>` (first spike step 1..T, -1 = none) |

## Run

{run}

Inputs are latency-coded counts: a pixel x in [0, 1] has count c = floor(x*K + 1/2); a count
c > 0 spikes once, at step K - c + 1 of its sample.  Samples run back to back, T = {t_total}
Lava steps each; every neuron resets at the first step of a sample.  The decision is the argmax
of the readout potential at step T.  About 1 ms per Lava step: Lava is for checking, not for
bulk evaluation.

Populations:

{pops}
"""


def _pop_table(pops: list) -> str:
    rows = ["| population | role | neurons | parts (kind, weight_exp) | fire window |", "|---|---|---|---|---|"]
    for p in pops:
        parts = ", ".join(f"{kind} {exp}" for kind, _, exp in p["parts"])
        win = f"{p['fire_start']}..{p['fire_end']}" if p["fire_start"] <= p["fire_end"] else "never fires"
        rows.append(f"| {p['name']} | {p['role']} | {p['neurons']} | {parts} | {win} |")
    return "\n".join(rows)


_LIF_README = """# Lava program for `{model}`

A quantized LIF network (leaky integrate-and-fire neurons with Loihi's fixed-point rules) exported
by snncompile, runnable on Intel's Lava simulator (lava-nc 0.10.0,
`Loihi2SimCfg(select_tag="fixed_pt")`) without snncompile.  It uses stock Lava processes only:
`LIFReset` neurons (`PyLifResetModelBitAcc`: the integer step of `LIF`'s `PyLifModelBitAcc` plus a
reset of u and v at the start of every sample), `Dense` / `Sparse` / `DelayDense` connections and
`RingBuffer` inputs; it reproduces snncompile's fxsim bit for bit.

| file | what |
|---|---|
| `params.npz` | the network in integers: per population du, dv, vth, bias_mant, bias_exp; per connection its source, target, delay, weight_exp and integer weights (`meta_json` + arrays) |
| `run_lava.py`, `snnrt/` | the program: snncompile's own Lava modules, copied whole (the Python 3.11 import fix for Lava, the network builder); runs the samples back to back |
| `inputs.npz` | (if present) input spike rasters: array `spikes` (N, T_in, {shape}) of 0/1 |
| `outputs.npz` | written by `run_lava.py`: `decisions`, `scores`, and per population `spikes_<name>` and `v_<name>` (N, T, neurons) at every step |

## Run

{run}

Raster column t - 1 is sent at step t; a sample runs T = T_in + {depth} steps (one step of delay
per connection, plus the graph's delays), then a short silent gap; every neuron resets at the
first step of a sample.  A sample whose gap was not silent (something still in flight) is run
again in a network of its own, so every sample starts from a fresh state.  The decision is the
argmax of the readout's {readout_rule}.  About 1-2 ms per Lava step: Lava is for
checking, not for bulk evaluation.

Populations (nonzero biases: the neurons' own bias; Affine biases arrive through the always-on bias input):

{pops}

Connections:

{conns}
"""


def _lif_files(qgraph, spikes) -> dict:
    plan = lif_plan(qgraph)
    meta = plan["meta"]
    if spikes is not None:
        spikes = np.asarray(spikes)
        if spikes.ndim < 2 or int(np.prod(spikes.shape[2:])) != meta["n_in"] or not np.isin(spikes, (0, 1)).all():
            raise InvalidModel(f"export_lava: spikes must be 0/1 with shape (N, T_in, "
                               f"{', '.join(map(str, meta['input_shape']))}), got {spikes.shape}")
        spikes = spikes.astype(np.uint8).reshape((len(spikes), spikes.shape[1], *meta["input_shape"]))
        meta["t_in"] = int(spikes.shape[1])
    files = {"params.npz": plan}
    if spikes is not None:
        files["inputs.npz"] = {"spikes": spikes}
    ro = next(p for p in plan["pops"] if p["readout"])
    rule = "spike count over the T steps" if ro["spiking"] else "mean potential over the T steps (it never spikes)"
    prows = ["| population | neurons | spiking | du | dv | vth (mantissa) | nonzero biases |",
             "|---|---|---|---|---|---|---|"]
    for p in plan["pops"]:
        prows.append(f"| {p['name']}{' (readout)' if p['readout'] else ''} | {p['neurons']} | {p['spiking']} | "
                     f"{p['du']} | {p['dv']} | {p['vth']} | {int(np.count_nonzero(p['bias_mant']))} |")
    crows = ["| connection | from | to | Lava process | delay | weight_exp |", "|---|---|---|---|---|---|"]
    for c in plan["conns"]:
        proc = "DelayDense" if c["delay"] > 1 else c["kind"].capitalize()
        crows.append(f"| {c['name']} | {c['src']} | {c['dst']} | {proc} | {c['delay']} | {c['weight_exp']} |")
    files["README.md"] = _LIF_README.format(run=_RUN.format(inputs="rasters (array 'spikes')"), model=_model_name(qgraph), shape=", ".join(map(str, meta["input_shape"])),
                                            depth=meta["depth"], readout_rule=rule, pops="\n".join(prows),
                                            conns="\n".join(crows))
    return files


def export_lava(qgraph, folder, counts=None, spikes=None) -> Path:
    """Write the standalone Lava program for ``qgraph`` to ``folder`` (see module docstring).

    TTFS graphs: ``counts``: optional encoded inputs (N, *input_shape) integers in 0..K, written
    as inputs.npz.  LIF graphs: ``spikes``: optional input spike rasters (N, T_in, *input_shape)
    in {0, 1}, written as inputs.npz.
    """
    if get_meta(qgraph).get("format") == LIF_FORMAT:
        if counts is not None:
            raise InvalidModel("export_lava: a LIF graph takes spikes= (input spike rasters), not counts=")
        files = _lif_files(qgraph, spikes)
    else:
        if spikes is not None:
            raise InvalidModel("export_lava: a TTFS graph takes counts= (encoded inputs), not spikes=")
        files = _ttfs_files(qgraph, counts)
    files.update(runtime_files())
    files["run_lava.py"] = LAUNCHER
    return _write_folder(Path(folder), files)


def emit(qgraph, folder, family: str, inputs) -> Path:
    """``--emit lava``: the program and the first samples of ``inputs`` (a targets.base.Inputs)."""
    spikes = None if inputs is None else inputs.spikes
    if family == "ttfs":
        return export_lava(qgraph, folder, counts=spikes)
    return export_lava(qgraph, folder, spikes=spikes)


def _write_folder(folder: Path, files: dict) -> Path:
    """Write ``files`` (name -> str | {"npz": arrays}) to a temporary sibling, then rename it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name, content in files.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if name == "params.npz":
                save_plan(content, path)
            elif isinstance(content, dict):
                np.savez_compressed(path, **content)
            else:
                path.write_text(content)
        (tmp / "run_lava.py").chmod(0o755)
        old = None
        if folder.exists():
            old = folder.parent / f".{folder.name}.old.{tmp.name}"
            folder.rename(old)
        tmp.rename(folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _model_name(qgraph) -> str:
    return get_meta(qgraph).get("name") or get_meta(qgraph).get("source") or "model.q.nir"


def _ttfs_files(qgraph, counts) -> dict:
    plan = ttfs_plan(qgraph)
    meta = plan["meta"]
    if counts is not None:
        counts = np.asarray(counts)
        n_in = int(np.prod(meta["input_shape"]))
        if counts.ndim < 1 or counts.size % n_in or np.any(counts != np.round(counts)) \
                or (counts.size and (counts.min() < 0 or counts.max() > meta["steps"])):
            raise InvalidModel(f"export_lava: counts must be integers in 0..{meta['steps']} with shape "
                               f"(N, {', '.join(map(str, meta['input_shape']))}), got {counts.shape}")
        counts = counts.astype(np.int64).reshape((-1, *meta["input_shape"]))
    files = {"params.npz": plan}
    if counts is not None:
        files["inputs.npz"] = {"counts": counts}
    shape = " x ".join(map(str, meta["input_shape"]))
    files["README.md"] = _README.format(run=_RUN.format(inputs="samples (array 'counts')"), model=_model_name(qgraph), steps=meta["steps"], t_total=meta["t_total"],
                                        shape=shape, pops=_pop_table(plan["pops"]))
    return files
