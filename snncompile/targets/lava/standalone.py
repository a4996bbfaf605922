"""The standalone Lava program of ``--emit lava`` (copied whole into the exported folder).

Needs lava-nc 0.10.0, numpy and scipy only:

    pip install --no-deps --ignore-requires-python lava-nc==0.10.0 'asteval>=0.9.31,<0.10' 'networkx<=2.8.7'
    python run_lava.py                 # runs inputs.npz next to params.npz (else one all-zero sample)
    python run_lava.py --inputs X.npz  # TTFS: array 'counts' (N, *input_shape) in 0..K;
                                       # LIF: array 'spikes' (N, T_in, *input_shape) of 0/1 (or a .npy)

It loads ``params.npz`` with :func:`.params.load_plan` (the same loader the in-process Lava target
uses), rebuilds the network (:mod:`.ttfs_runtime` or :mod:`.lif_runtime`), runs the samples back
to back and writes ``outputs.npz``:

* TTFS: ``decisions``, ``readout_v`` (integer readout potentials at step T), ``counts`` and
  ``spike_steps_<population>`` (first spike step 1..T per sample and neuron, -1 = none);
* LIF: ``decisions``, ``scores``, ``raw``, ``t_total``, ``rerun`` and per population
  ``spikes_<name>`` and ``v_<name>`` (N, T, n): spikes and integer v at every step.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

from ...errors import TargetUnavailable
from ...spikes import first_spike_steps
from .params import load_plan


def load_inputs(path: str, meta: dict) -> np.ndarray:
    """Encoded samples from ``path``; exits with a one-line message if they do not fit the plan."""
    z = np.load(path)
    ttfs = meta["format"] == "snncompile-ttfs"
    key = "counts" if ttfs else "spikes"
    x = np.asarray(z if path.endswith(".npy") else z[key])
    shape = tuple(meta["input_shape"])
    n_in = int(np.prod(shape))
    if ttfs:
        if x.ndim == 1 and x.size == n_in:
            x = x[None]
        if x.ndim < 2 or int(np.prod(x.shape[1:])) != n_in:
            sys.exit(f"counts must have shape (N, {', '.join(map(str, shape))}), got {x.shape}")
        if np.any(x != np.round(x)) or x.min() < 0 or x.max() > meta["steps"]:
            sys.exit(f"counts must be integers in 0..{meta['steps']} (c = floor(x*K + 1/2) for x in [0, 1])")
        return x.astype(np.int64).reshape(len(x), n_in)
    if x.ndim == 2 and x.shape[1] == n_in:  # one sample (T_in, inputs)
        x = x[None]
    if x.ndim < 3 or int(np.prod(x.shape[2:])) != n_in or not np.isin(x, (0, 1)).all():
        sys.exit(f"spikes must be 0/1 with shape (N, T_in, {', '.join(map(str, shape))}), got {x.shape}")
    return x.reshape(len(x), x.shape[1], n_in).astype(np.int32)


def run_ttfs(plan: dict, counts: np.ndarray, work: str, batch: int = 0, recorder: str = "file") -> dict:
    """Run TTFS samples (N, inputs) in builds of ``batch``; every population's v (N, T, n) and
    spikes (N, T, n) over the T compared steps of each sample, and Lava's seconds."""
    from .ttfs_runtime import run_populations

    meta, pops = plan["meta"], plan["pops"]
    K, T, P = int(meta["steps"]), int(meta["t_total"]), int(meta["period"])
    batch = batch or max(1, min(20000 // P, 20_000_000 // max(1, counts.shape[1] * P)))
    v = {p["name"]: [] for p in pops}
    s = {p["name"]: [] for p in pops}
    secs = {"build": 0.0, "run": 0.0, "read": 0.0}
    for i in range(0, len(counts), batch):
        out = run_populations(pops, counts[i:i + batch], K, P, int(meta["state_bits"]), int(meta["act_shift"]),
                              int(meta["weight_bits"]), work, recorder=recorder)
        for p, vv, ss in zip(pops, out["v"], out["s"]):
            if ss[:, T:].any():
                raise AssertionError(f"lava: {p['name']!r} fired in the margin of a sample")
            if (ss.sum(axis=1) > 1).any():
                raise AssertionError(f"lava: a neuron of {p['name']!r} fired twice (fire-once violated)")
            v[p["name"]].append(vv[:, :T])
            s[p["name"]].append(ss[:, :T])
        for key in secs:
            secs[key] += out["seconds"][key]
    cat = np.concatenate
    return {"v": {k: cat(x) for k, x in v.items()}, "s": {k: cat(x) for k, x in s.items()}, "seconds": secs,
            "builds": -(-len(counts) // batch), "batch": batch}


def main(argv=None) -> int:
    here = os.getcwd()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", help="encoded samples (.npz with array 'counts' or 'spikes', or .npy); "
                                     "default: inputs.npz beside params.npz")
    ap.add_argument("--params", default=os.path.join(here, "params.npz"))
    ap.add_argument("--out", default=None, help="default: outputs.npz beside params.npz")
    ap.add_argument("--batch", type=int, default=0, help="samples per Lava build (default: about 20000 steps)")
    ap.add_argument("--gap", type=int, default=0, help="LIF: extra silent steps between samples")
    ap.add_argument("--t-total", type=int, default=None, help="LIF: steps per sample (default T_in + depth)")
    ap.add_argument("--reset", choices=("periodic", "rebuild"), default="periodic",
                    help="LIF: periodic (LIFReset, samples back to back) or rebuild (plain LIF, one build per sample)")
    args = ap.parse_args(argv)
    folder = os.path.dirname(os.path.abspath(args.params))
    out_path = args.out or os.path.join(folder, "outputs.npz")
    try:
        from .compat import require_lava

        require_lava()
    except TargetUnavailable as exc:
        sys.exit(str(exc))
    plan = load_plan(args.params)
    meta = plan["meta"]
    ttfs = meta["format"] == "snncompile-ttfs"
    path = args.inputs or os.path.join(folder, "inputs.npz")
    if args.inputs or os.path.exists(path):
        x = load_inputs(path, meta)
    else:
        print("no inputs.npz and no --inputs: running one all-zero sample")
        n_in = int(np.prod(meta["input_shape"]))
        x = np.zeros((1, n_in), np.int64) if ttfs else np.zeros((1, int(meta.get("t_in") or 1), n_in), np.int32)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="run-lava-") as work:
        if ttfs:
            out = run_ttfs(plan, x, work, args.batch)
            T = int(meta["t_total"])
            ro = plan["pops"][-1]["name"]
            raw = out["v"][ro][:, T - 1]
            arrays = {f"spike_steps_{p['name']}": first_spike_steps(out["s"][p["name"]])
                      for p in plan["pops"] if p["role"] != "readout"}
            arrays.update(readout_v=raw, counts=x)
        else:
            from .lif_runtime import lif_readout_scores, lif_schedule, run_lif_network

            sched = lif_schedule(plan, x.shape[1], args.t_total, args.gap)
            T = sched["t_total"]
            out = run_lif_network(plan, sched, x, work, batch=args.batch, reset=args.reset)
            raw, scores = lif_readout_scores(plan, out, T)
            arrays = {}
            for p in plan["pops"]:
                arrays["spikes_" + p["name"]] = out["s"][p["name"]].astype(np.int8)
                arrays["v_" + p["name"]] = out["v"][p["name"]]
            arrays.update(scores=scores, raw=raw, t_total=T, rerun=np.asarray(out["rerun"], int))
    seconds = time.perf_counter() - t0
    decisions = np.asarray(arrays.get("scores", arrays.get("readout_v"))).argmax(axis=1)
    for k, d in enumerate(decisions):
        print(f"sample {k}: decision {int(d)}")
    n = len(x)
    print(f"{n} samples, {out['builds']} builds, {seconds:.2f} s ({seconds / n:.3f} s per sample)")
    np.savez(out_path, decisions=decisions, **arrays)
    print(f"wrote {out_path}")
    return 0
