"""``--emit lava``: a standalone Lava program for a quantized TTFS or LIF graph.

:func:`export_lava` writes a folder for either kind of graph (format "snncompile-ttfs" or
"snncompile-lif-q"); for a TTFS graph it holds

* ``params.npz``: the network in integers: per population its Lava connection weights (the
  integer matrix, dense or CSR arrays, as :func:`snncompile.targets.lava.lava_parts` writes it
  for Lava's MIXED weights, with the exponent of each part), bias, slope, threshold and step
  schedule; plus the input shape, K, T, the sample period and the arithmetic (JSON under
  ``meta_json``).  Nothing data-specific.
* ``run_lava.py``: a script that needs only lava-nc, numpy and scipy (Lava's Sparse uses it).
  It embeds the source of ``snncompile/targets/lava_compat.py`` (the Python 3.11 import fix)
  and ``snncompile/targets/lava_ttfs.py`` (the TTFS neuron and the network builder), rebuilds
  the network, runs the samples of ``inputs.npz`` (or ``--counts FILE``), prints the decisions
  and writes ``outputs.npz``.
* ``inputs.npz`` (only when ``counts`` is given): encoded input samples, array ``counts``.
* ``README.md``.

For a quantized LIF graph (format "snncompile-lif-q") the folder holds

* ``params.npz``: the stock-Lava network of :func:`snncompile.targets.lava.lif_plan`: per
  population du, dv, vth, bias_mant, bias_exp; per connection its source, target, delay,
  weight_exp and integer weights (as in the graph: Lava clips and truncates them itself); the
  input shape, depth, weight bits and sign mode (JSON under ``meta_json``).
* ``run_lava.py``: needs only lava-nc, numpy and scipy.  It embeds ``lava_compat.py`` and the
  self-contained LIF section of ``snncompile/targets/lava.py`` (the functions listed in
  ``lava.LIF_STANDALONE``: schedule, stock LIFReset / LIF / Dense / DelayDense / Sparse /
  RingBuffer network, file recording, the silent-boundary check and the reruns), runs the
  spike raster of ``inputs.npz`` (array ``spikes``, or ``--spikes FILE``), prints the
  decisions and writes ``outputs.npz`` (every population's spikes and integer v at every step).
* ``inputs.npz`` (only when ``spikes`` is given): array ``spikes`` (N, T_in, *input_shape) uint8.
* ``README.md``.

The folder is written to a temporary sibling first and then renamed into place.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import InvalidModel

_SCRIPT_HEAD = '''#!/usr/bin/env python3
"""Standalone Lava run of a TTFS network exported by snncompile (--emit lava).

Needs lava-nc 0.10.0, numpy and scipy only:
    pip install --no-deps --ignore-requires-python lava-nc==0.10.0 'asteval>=0.9.31,<0.10' 'networkx<=2.8.7'
Usage:
    python run_lava.py                  # runs inputs.npz next to this file (else one all-zero sample)
    python run_lava.py --counts X.npz   # array 'counts' (N, *input_shape), integers 0..K
Writes outputs.npz: decisions, readout_v (integer readout potentials at step T) and
spike_steps_<population> (first spike step 1..T per sample and neuron, -1 = none).
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

'''

_SCRIPT_MAIN = '''

# ---------------------------------------------------------------------------------------------
# main: load params.npz, rebuild the populations, run, write outputs.npz

HERE = os.path.dirname(os.path.abspath(__file__))


def load_params(path):
    import scipy.sparse as sp

    z = np.load(path, allow_pickle=False)
    meta = json.loads(str(z["meta_json"]))
    pops = []
    for i, p in enumerate(meta["populations"]):
        pop = dict(p)
        pop["bias"] = z[f"p{i}_bias"].astype(np.int64)
        parts = []
        for j, part in enumerate(p["parts"]):
            key = f"p{i}_part{j}"
            if part["kind"] == "dense":
                w = z[key + "_weights"].astype(np.int32)
            else:
                w = sp.csr_matrix((z[key + "_data"].astype(np.int32), z[key + "_indices"], z[key + "_indptr"]),
                                  shape=tuple(z[key + "_shape"]))
            parts.append((part["kind"], w, int(part["exp"])))
        pop["parts"] = parts
        pops.append(pop)
    return meta, pops


def load_counts(path, meta):
    if path.endswith(".npy"):
        counts = np.load(path)
    else:
        counts = np.load(path)["counts"]
    counts = np.asarray(counts)
    shape = tuple(meta["input_shape"])
    n_in = int(np.prod(shape))
    if counts.ndim == 1 and counts.size == n_in:
        counts = counts[None]
    if counts.size % n_in or counts.ndim < 2 or int(np.prod(counts.shape[1:])) != n_in:
        sys.exit(f"counts must have shape (N, {', '.join(map(str, shape))}), got {counts.shape}")
    if np.any(counts != np.round(counts)) or counts.min() < 0 or counts.max() > meta["steps"]:
        sys.exit(f"counts must be integers in 0..{meta['steps']} (c = floor(x*K + 1/2) for x in [0, 1])")
    return counts.astype(np.int64).reshape(len(counts), n_in)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", help="input counts (.npz with array 'counts', or .npy); default inputs.npz")
    ap.add_argument("--params", default=os.path.join(HERE, "params.npz"))
    ap.add_argument("--out", default=os.path.join(HERE, "outputs.npz"))
    ap.add_argument("--batch", type=int, default=0, help="samples per Lava run (default: about 20000 steps)")
    args = ap.parse_args(argv)
    meta, pops = load_params(args.params)
    K, T, P = meta["steps"], meta["t_total"], meta["period"]
    path = args.counts or os.path.join(HERE, "inputs.npz")
    if args.counts or os.path.exists(path):
        counts = load_counts(path, meta)
    else:
        print("no inputs.npz and no --counts: running one all-zero input sample")
        counts = np.zeros((1, int(np.prod(meta["input_shape"]))), np.int64)
    n = len(counts)
    batch = args.batch or max(1, 20000 // P)
    vs = {p["name"]: [] for p in pops}
    steps = {p["name"]: [] for p in pops if p["role"] != "readout"}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="run-lava-") as work:
        for i in range(0, n, batch):
            out = run_populations(pops, counts[i:i + batch], K, P, meta["state_bits"], meta["act_shift"],
                                  meta["weight_bits"], work)
            for p, v, s in zip(pops, out["v"], out["s"]):
                vs[p["name"]].append(v[:, T - 1])
                if p["name"] in steps:
                    s = s[:, :T]
                    steps[p["name"]].append(np.where(s.any(1), s.argmax(1) + 1, -1))
    seconds = time.perf_counter() - t0
    readout = np.concatenate(vs[pops[-1]["name"]])
    decisions = readout.argmax(axis=1)
    for k, d in enumerate(decisions):
        print(f"sample {k}: decision {int(d)}")
    print(f"{n} samples, {n * P} Lava steps, {seconds:.2f} s ({seconds / n:.3f} s per sample)")
    np.savez(args.out, decisions=decisions, readout_v=readout, counts=counts,
             **{f"spike_steps_{name}": np.concatenate(st) for name, st in steps.items()})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

_README = """# Lava program for `{model}`

A quantized time-to-first-spike network exported by snncompile (`--emit lava`), runnable on
Intel's Lava simulator (lava-nc 0.10.0, `Loihi2SimCfg(select_tag="fixed_pt")`) without snncompile.

| file | what |
|---|---|
| `params.npz` | the network in integers: per population its Lava connection weights (dense or CSR arrays, one or more parts, each with its `weight_exp`), bias, slope, threshold and step schedule; input shape, K = {steps} steps per window, T = {t_total} steps per sample, arithmetic (`meta_json`) |
| `run_lava.py` | the program: embeds the Python 3.11 import fix for Lava and the TTFS neuron (a Lava Process with a bit-accurate ProcessModel), rebuilds RingBuffer -> Dense/Sparse -> TtfsNeuron -> ... and runs |
| `inputs.npz` | (if present) encoded test samples: array `counts` (N, {shape}), integers 0..{steps} |
| `outputs.npz` | written by `run_lava.py`: `decisions`, `readout_v` (integer readout potentials at step T), `spike_steps_<population>` (first spike step 1..T, -1 = none) |

## Run

```
pip install numpy scipy
pip install --no-deps --ignore-requires-python lava-nc==0.10.0 'asteval>=0.9.31,<0.10' 'networkx<=2.8.7'
python run_lava.py                  # inputs.npz, else one all-zero sample
python run_lava.py --counts my.npz  # your own samples
```

Inputs are latency-coded counts: a pixel x in [0, 1] has count c = floor(x*K + 1/2); a count
c > 0 spikes once, at step K - c + 1 of its sample.  Samples run back to back, T = {t_total}
Lava steps each; every neuron resets at the first step of a sample.  The decision is the argmax
of the readout potential at step T.  About 1 ms per Lava step: Lava is for checking, not for
bulk evaluation.

Populations:

{pops}
"""


def _pop_table(meta: dict) -> str:
    rows = ["| population | role | neurons | parts (kind, weight_exp) | fire window |", "|---|---|---|---|---|"]
    for p in meta["populations"]:
        parts = ", ".join(f"{q['kind']} {q['exp']}" for q in p["parts"])
        win = f"{p['fire_start']}..{p['fire_end']}" if p["fire_start"] <= p["fire_end"] else "never fires"
        rows.append(f"| {p['name']} | {p['role']} | {p['neurons']} | {parts} | {win} |")
    return "\n".join(rows)


def _strip_future(src: str) -> str:
    return "\n".join(line for line in src.splitlines() if not line.startswith("from __future__ import"))


def script_source() -> str:
    """The text of run_lava.py: head, the two embedded modules, main."""
    here = Path(__file__).resolve().parent
    compat = _strip_future((here / "lava_compat.py").read_text())
    ttfs = _strip_future((here / "lava_ttfs.py").read_text())
    return (_SCRIPT_HEAD
            + "# ---------------------------------------------------------------------------------------------\n"
            + "# embedded: snncompile/targets/lava_compat.py\n\n" + compat
            + "\n\ntry:\n    require_lava()\nexcept TargetUnavailable as exc:\n    sys.exit(str(exc))\n\n"
            + "# ---------------------------------------------------------------------------------------------\n"
            + "# embedded: snncompile/targets/lava_ttfs.py\n\n" + ttfs + _SCRIPT_MAIN)


# ---------------------------------------------------------------------------------------------
# Quantized LIF graphs: stock Lava processes only

_LIF_SCRIPT_HEAD = '''#!/usr/bin/env python3
"""Standalone Lava run of a quantized LIF network exported by snncompile (stock Lava processes).

Needs lava-nc 0.10.0, numpy and scipy only:
    pip install --no-deps --ignore-requires-python lava-nc==0.10.0 'asteval>=0.9.31,<0.10' 'networkx<=2.8.7'
Usage:
    python run_lava.py                  # runs inputs.npz next to this file (else one all-zero sample)
    python run_lava.py --spikes X.npz   # array 'spikes' (N, T_in, *input_shape) of 0/1 (or a .npy)
Writes outputs.npz: decisions, scores (readout spike counts, or the mean of v times v_lsb for a
non-spiking readout), and per population spikes_<name> (N, T, n) and v_<name> (N, T, n): its
spikes and integer potential at every step 1..T of every sample.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

'''

_LIF_SCRIPT_MAIN = '''

# ---------------------------------------------------------------------------------------------
# main: load params.npz, rebuild the network, run, write outputs.npz

HERE = os.path.dirname(os.path.abspath(__file__))


def load_params(path):
    z = np.load(path, allow_pickle=False)
    meta = json.loads(str(z["meta_json"]))
    pops = [dict(p, bias_mant=z[f"p{i}_bias_mant"], bias_exp=z[f"p{i}_bias_exp"])
            for i, p in enumerate(meta["pops"])]
    conns = [dict(c, weights=z[f"c{j}_weights"]) for j, c in enumerate(meta["conns"])]
    return {"meta": meta["plan"], "pops": pops, "conns": conns}


def load_spikes(path, meta):
    spikes = np.load(path) if path.endswith(".npy") else np.load(path)["spikes"]
    spikes = np.asarray(spikes)
    n_in = int(np.prod(meta["input_shape"]))
    if spikes.ndim == 2 and spikes.shape[1] == n_in:  # one sample (T_in, inputs)
        spikes = spikes[None]
    if spikes.ndim < 3 or int(np.prod(spikes.shape[2:])) != n_in or not np.isin(spikes, (0, 1)).all():
        sys.exit(f"spikes must be 0/1 with shape (N, T_in, {', '.join(map(str, meta['input_shape']))}), "
                 f"got {spikes.shape}")
    return spikes.reshape(len(spikes), spikes.shape[1], n_in).astype(np.int32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spikes", help="input rasters (.npz with array 'spikes', or .npy); default inputs.npz")
    ap.add_argument("--params", default=os.path.join(HERE, "params.npz"))
    ap.add_argument("--out", default=os.path.join(HERE, "outputs.npz"))
    ap.add_argument("--batch", type=int, default=0, help="samples per Lava build (default: about 20000 steps)")
    ap.add_argument("--gap", type=int, default=0, help="extra silent steps between samples")
    ap.add_argument("--t-total", type=int, default=None, help="steps per sample (default T_in + depth)")
    ap.add_argument("--reset", choices=("periodic", "rebuild"), default="periodic",
                    help="periodic: LIFReset, samples back to back (default); rebuild: plain LIF, one build per sample")
    args = ap.parse_args(argv)
    plan = load_params(args.params)
    meta = plan["meta"]
    path = args.spikes or os.path.join(HERE, "inputs.npz")
    if args.spikes or os.path.exists(path):
        spikes = load_spikes(path, meta)
    else:
        print("no inputs.npz and no --spikes: running one all-zero input sample")
        spikes = np.zeros((1, int(meta.get("t_in") or 1), int(meta["n_in"])), np.int32)
    n = len(spikes)
    sched = lif_schedule(plan, spikes.shape[1], args.t_total, args.gap)
    T = sched["t_total"]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="run-lava-") as work:
        out = run_lif_network(plan, sched, spikes, work, batch=args.batch, reset=args.reset)
    seconds = time.perf_counter() - t0
    raw, scores = lif_readout_scores(plan, out, T)
    decisions = scores.argmax(axis=1)
    for k, d in enumerate(decisions):
        print(f"sample {k}: decision {int(d)}")
    print(f"{n} samples, {n * sched['period']} Lava steps ({sched['period']} per sample), {out['builds']} builds, "
          f"{seconds:.2f} s ({seconds / n:.3f} s per sample)")
    arrays = {}
    for p in plan["pops"]:
        arrays["spikes_" + p["name"]] = out["s"][p["name"]].astype(np.int8)
        arrays["v_" + p["name"]] = out["v"][p["name"]]
    np.savez(args.out, decisions=decisions, scores=scores, raw=raw, t_total=T, rerun=np.asarray(out["rerun"], int),
             **arrays)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

_LIF_README = """# Lava program for `{model}`

A quantized LIF network (leaky integrate-and-fire neurons with Loihi's fixed-point rules) exported
by snncompile, runnable on Intel's Lava simulator (lava-nc 0.10.0,
`Loihi2SimCfg(select_tag="fixed_pt")`) without snncompile.  It uses stock Lava processes only:
`LIFReset` neurons (`PyLifResetModelBitAcc`: the integer step of `LIF`'s `PyLifModelBitAcc` plus a
reset of u and v at the start of every sample), `Dense` / `Sparse` / `DelayDense` connections and
`RingBuffer` inputs; it reproduces snncompile's fxsim (`snncompile/lif/fixed.py`) bit for bit.

| file | what |
|---|---|
| `params.npz` | the network in integers: per population du, dv, vth, bias_mant, bias_exp; per connection its source, target, delay, weight_exp and integer weights (`meta_json` + arrays) |
| `run_lava.py` | the program: embeds the Python 3.11 import fix for Lava and the network builder, runs the samples back to back |
| `inputs.npz` | (if present) input spike rasters: array `spikes` (N, T_in, {shape}) of 0/1 |
| `outputs.npz` | written by `run_lava.py`: `decisions`, `scores`, and per population `spikes_<name>` and `v_<name>` (N, T, neurons) at every step |

## Run

```
pip install numpy scipy
pip install --no-deps --ignore-requires-python lava-nc==0.10.0 'asteval>=0.9.31,<0.10' 'networkx<=2.8.7'
python run_lava.py                  # inputs.npz, else one all-zero sample
python run_lava.py --spikes my.npz  # your own rasters
```

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


def lif_script_source() -> str:
    """The text of the LIF run_lava.py: head, the compat module, the self-contained LIF section of
    lava.py (:data:`~snncompile.targets.lava.LIF_STANDALONE`), main."""
    import inspect

    from . import lava

    here = Path(__file__).resolve().parent
    compat = _strip_future((here / "lava_compat.py").read_text())
    funcs = "\n\n".join(inspect.getsource(f) for f in lava.LIF_STANDALONE)
    return (_LIF_SCRIPT_HEAD
            + "# ---------------------------------------------------------------------------------------------\n"
            + "# embedded: snncompile/targets/lava_compat.py\n\n" + compat
            + "\n\ntry:\n    require_lava()\nexcept TargetUnavailable as exc:\n    sys.exit(str(exc))\n\n"
            + "# ---------------------------------------------------------------------------------------------\n"
            + "# embedded: the stock-Lava LIF network of snncompile/targets/lava.py\n\n\n" + funcs + _LIF_SCRIPT_MAIN)


def _lif_files(qgraph, spikes) -> dict:
    from .lava import lif_plan

    plan = lif_plan(qgraph)
    meta = dict(plan["meta"])
    arrays, pops, conns = {}, [], []
    for i, p in enumerate(plan["pops"]):
        arrays[f"p{i}_bias_mant"] = np.asarray(p["bias_mant"], np.int64)
        arrays[f"p{i}_bias_exp"] = np.asarray(p["bias_exp"], np.int64)
        pops.append({k: v for k, v in p.items() if k not in ("bias_mant", "bias_exp")})
    for j, c in enumerate(plan["conns"]):
        arrays[f"c{j}_weights"] = np.asarray(c["weights"], np.int32)
        conns.append({k: v for k, v in c.items() if k != "weights"})
    if spikes is not None:
        spikes = np.asarray(spikes)
        if spikes.ndim < 2 or int(np.prod(spikes.shape[2:])) != meta["n_in"] or not np.isin(spikes, (0, 1)).all():
            raise InvalidModel(f"export_lava: spikes must be 0/1 with shape (N, T_in, "
                               f"{', '.join(map(str, meta['input_shape']))}), got {spikes.shape}")
        spikes = spikes.astype(np.uint8).reshape((len(spikes), spikes.shape[1], *meta["input_shape"]))
        meta["t_in"] = int(spikes.shape[1])
    doc = {"format": "snncompile-lava-lif-export", "version": 1, "plan": meta, "pops": pops, "conns": conns}
    files = {"params.npz": {"meta_json": np.array(json.dumps(doc)), **arrays}, "run_lava.py": lif_script_source()}
    if spikes is not None:
        files["inputs.npz"] = {"spikes": spikes}
    ro = next(p for p in plan["pops"] if p["readout"])
    rule = "spike count over the T steps" if ro["spiking"] else "mean potential over the T steps (it never spikes)"
    prows = ["| population | neurons | spiking | du | dv | vth (mantissa) | nonzero biases |",
             "|---|---|---|---|---|---|---|"]
    for i, p in enumerate(plan["pops"]):
        prows.append(f"| {p['name']}{' (readout)' if p['readout'] else ''} | {p['neurons']} | {p['spiking']} | "
                     f"{p['du']} | {p['dv']} | {p['vth']} | {int(np.count_nonzero(arrays[f'p{i}_bias_mant']))} |")
    crows = ["| connection | from | to | Lava process | delay | weight_exp |", "|---|---|---|---|---|---|"]
    for c in plan["conns"]:
        proc = "DelayDense" if c["delay"] > 1 else c["kind"].capitalize()
        crows.append(f"| {c['name']} | {c['src']} | {c['dst']} | {proc} | {c['delay']} | {c['weight_exp']} |")
    files["README.md"] = _LIF_README.format(model=_model_name(qgraph), shape=", ".join(map(str, meta["input_shape"])),
                                            depth=meta["depth"], readout_rule=rule, pops="\n".join(prows),
                                            conns="\n".join(crows))
    return files


def export_lava(qgraph, folder, counts=None, spikes=None) -> Path:
    """Write the standalone Lava program for ``qgraph`` to ``folder`` (see module docstring).

    TTFS graphs: ``counts``: optional encoded inputs (N, *input_shape) integers in 0..K, written
    as inputs.npz.  LIF graphs: ``spikes``: optional input spike rasters (N, T_in, *input_shape)
    in {0, 1}, written as inputs.npz.
    """
    from ..nirio import get_meta
    from .lava import LIF_FORMAT

    if get_meta(qgraph).get("format") == LIF_FORMAT:
        if counts is not None:
            raise InvalidModel("export_lava: a LIF graph takes spikes= (input spike rasters), not counts=")
        files = _lif_files(qgraph, spikes)
    else:
        if spikes is not None:
            raise InvalidModel("export_lava: a TTFS graph takes counts= (encoded inputs), not spikes=")
        files = _ttfs_files(qgraph, counts)
    return _write_folder(Path(folder), files)


def _write_folder(folder: Path, files: dict) -> Path:
    """Write ``files`` (name -> str | {"npz": arrays}) to a temporary sibling, then rename it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name, content in files.items():
            if isinstance(content, dict):
                np.savez_compressed(tmp / name, **content)
            else:
                (tmp / name).write_text(content)
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
    from ..nirio import get_meta

    return get_meta(qgraph).get("name") or get_meta(qgraph).get("source") or "model.q.nir"


def _ttfs_files(qgraph, counts) -> dict:
    from .lava import network_plan

    plan = network_plan(qgraph)
    meta = dict(plan["meta"])
    arrays = {}
    pops_meta = []
    for i, p in enumerate(plan["pops"]):
        arrays[f"p{i}_bias"] = np.asarray(p["bias"], np.int64)
        parts = []
        for j, (kind, w, exp) in enumerate(p["parts"]):
            key = f"p{i}_part{j}"
            if kind == "dense":
                arrays[key + "_weights"] = np.asarray(w, np.int32)
            else:
                arrays[key + "_data"] = w.data.astype(np.int32)
                arrays[key + "_indices"] = w.indices.astype(np.int64)
                arrays[key + "_indptr"] = w.indptr.astype(np.int64)
                arrays[key + "_shape"] = np.asarray(w.shape, np.int64)
            parts.append({"kind": kind, "exp": int(exp)})
        pops_meta.append({k: p[k] for k in ("name", "role", "neurons", "slope", "threshold", "t_in_end",
                                            "fire_start", "fire_end", "weight_exp", "v_lsb")}
                         | {"out_shape": list(p["out_shape"]), "parts": parts})
    meta["input_shape"] = list(meta["input_shape"])
    meta["populations"] = pops_meta
    meta["format"] = "snncompile-lava-export"
    meta["version"] = 1
    if counts is not None:
        counts = np.asarray(counts)
        n_in = int(np.prod(meta["input_shape"]))
        if counts.ndim < 1 or counts.size % n_in or np.any(counts != np.round(counts)) \
                or (counts.size and (counts.min() < 0 or counts.max() > meta["steps"])):
            raise InvalidModel(f"export_lava: counts must be integers in 0..{meta['steps']} with shape "
                               f"(N, {', '.join(map(str, meta['input_shape']))}), got {counts.shape}")
        counts = counts.astype(np.int64).reshape((-1, *meta["input_shape"]))
    files = {"params.npz": {"meta_json": np.array(json.dumps(meta)), **arrays}, "run_lava.py": script_source()}
    if counts is not None:
        files["inputs.npz"] = {"counts": counts}
    shape = " x ".join(map(str, meta["input_shape"]))
    files["README.md"] = _README.format(model=_model_name(qgraph), steps=meta["steps"], t_total=meta["t_total"],
                                        shape=shape, pops=_pop_table(meta))
    return files
