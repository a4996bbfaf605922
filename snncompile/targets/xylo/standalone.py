"""The standalone Xylo program of ``--emit xylo`` (copied whole into the exported folder).

Needs rockpool 3.1.0 and xylosim 0.1.3 only:

    pip install rockpool==3.1.0 pybind11 && pip install --no-build-isolation xylosim==0.1.3
    python run_xylo.py                  # runs inputs.npz beside spec.npz (else one silent sample)
    python run_xylo.py --inputs X.npz   # array 'spikes' (N, T, inputs): input spike counts per step
    python run_xylo.py --device         # a connected Xylo Audio 2 board through samna (untested here)

It builds rockpool's ``XyloSim.from_specification`` from ``spec.npz`` (the arguments as the
compile decided them), runs every sample from the reset state and writes ``outputs.npz``:
``decisions``, ``scores`` (output spike counts, or the mean output v times its LSB for a
non-spiking readout) and every recorded state (``spikes``, ``isyn``, ``isyn2``, ``vmem``,
``spikes_out``, ``isyn_out``, ``vmem_out``, each (N, T, neurons)).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from ...errors import TargetUnavailable
from .compat import require_xylosim
from .sim import run_xylosim


def load_spec(folder: str) -> tuple[dict, dict]:
    z = np.load(os.path.join(folder, "spec.npz"))
    info = json.loads(open(os.path.join(folder, "spec.json")).read())
    spec = {k: z[k] for k in z.files}
    spec.update(info["scalars"])
    return spec, info


def run_device(spec: dict, raster: np.ndarray) -> dict:  # pragma: no cover - needs a board and samna
    """Run on a connected Xylo Audio 2 board (rockpool's XyloSamna); only spikes_out come back."""
    from rockpool.devices.xylo import find_xylo_hdks
    from rockpool.devices.xylo.syns61201 import XyloSamna, config_from_specification

    hdks, mods, _ = find_xylo_hdks()
    if not hdks:
        sys.exit("no Xylo board found (samna sees none)")
    config, ok, msg = config_from_specification(**spec)
    if not ok:
        sys.exit(f"the specification does not fit the board: {msg}")
    dev = XyloSamna(hdks[0], config, dt=spec["dt"])
    outs = [np.asarray(dev(r)[0], dtype=np.int64) for r in raster]
    return {"spikes_out": np.stack(outs)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", default=os.getcwd(), help="the exported folder (spec.npz, spec.json)")
    ap.add_argument("--inputs", help="input counts (.npz with array 'spikes'); default inputs.npz")
    ap.add_argument("--out", default=None, help="default: outputs.npz in the folder")
    ap.add_argument("--device", action="store_true", help="run on a connected Xylo board through samna")
    args = ap.parse_args(argv)
    spec, info = load_spec(args.folder)
    path = args.inputs or os.path.join(args.folder, "inputs.npz")
    n_in = int(spec["weights_in"].shape[0])
    if args.inputs or os.path.exists(path):
        raster = np.asarray(np.load(path)["spikes"], dtype=np.int64)
        if raster.ndim != 3 or raster.shape[2] != n_in or raster.min() < 0 or raster.max() > 255:
            sys.exit(f"spikes must be counts 0..255 with shape (N, T, {n_in}), got {raster.shape}")
    else:
        print("no inputs.npz and no --inputs: running one silent sample")
        raster = np.zeros((1, int(info["t_total"]), n_in), np.int64)
    t0 = time.perf_counter()
    try:
        if args.device:
            rec = run_device(spec, raster)
        else:
            require_xylosim()
            rec = run_xylosim(spec, raster)
    except TargetUnavailable as exc:
        sys.exit(str(exc))
    seconds = time.perf_counter() - t0
    if info["readout_spiking"] or "vmem_out" not in rec:
        scores = rec["spikes_out"].sum(axis=1).astype(np.float64)
    else:
        scores = rec["vmem_out"].sum(axis=1) * info["v_lsb_out"] / raster.shape[1]
    decisions = scores.argmax(axis=1)
    for k, d in enumerate(decisions):
        print(f"sample {k}: decision {int(d)}")
    print(f"{len(raster)} samples, {seconds:.2f} s on {'the board' if args.device else 'XyloSim'}")
    out = args.out or os.path.join(args.folder, "outputs.npz")
    np.savez(out, decisions=decisions, scores=scores, **rec)
    print(f"wrote {out}")
    return 0
