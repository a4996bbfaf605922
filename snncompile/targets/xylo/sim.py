"""Run a Xylo network on rockpool's XyloSim (Xylo Audio 2, ``syns61201``) and compare it with
:func:`snncompile.neurons.xylo.simulate` step by step.

A spec is the argument dict of ``XyloSim.from_specification`` (see :data:`SPEC_KEYS`); rasters are
(N, T, Nin) integer spike counts (0..255: XyloSim passes them as ``uint8``).  Each sample runs from
the reset state (``reset_state()`` before every sample).
"""

from __future__ import annotations

import numpy as np

from ...neurons.xylo import SPEC_KEYS, simulate
from ..lava.compare import first_mismatch
from .compat import require_xylosim

RECORD = {"spikes": "Spikes", "isyn": "Isyn", "isyn2": "Isyn2", "vmem": "Vmem",
          "isyn_out": "Isyn_out", "vmem_out": "Vmem_out"}


def build(spec: dict):
    """``XyloSim.from_specification`` from a spec dict (unknown keys are ignored)."""
    XyloSim = require_xylosim()
    kw = {k: spec[k] for k in SPEC_KEYS if k in spec and spec[k] is not None}
    for k, v in kw.items():
        if isinstance(v, np.ndarray):
            kw[k] = v.astype(np.int64) if k != "dt" else v
    return XyloSim.from_specification(**kw)


def run_xylosim(spec: dict, raster, sim=None) -> dict:
    """XyloSim's recording for every sample, as (N, T, ·) int64 arrays keyed like ``simulate``'s."""
    sim = build(spec) if sim is None else sim
    raster = np.asarray(raster, dtype=np.int64)
    if raster.ndim == 2:
        raster = raster[None]
    if raster.min(initial=0) < 0 or raster.max(initial=0) > 255:
        raise ValueError("XyloSim takes input spike counts in 0..255 (uint8)")
    n, t_steps, _ = raster.shape
    out = {}
    for i in range(n):
        sim.reset_state()
        spikes_out, _, rec = sim.evolve(raster[i], record=True)
        rows = {k: np.asarray(rec[v], dtype=np.int64).reshape(t_steps, -1) for k, v in RECORD.items()}
        rows["spikes_out"] = np.asarray(spikes_out, dtype=np.int64).reshape(t_steps, -1)
        for k, v in rows.items():
            out.setdefault(k, np.zeros((n,) + v.shape, np.int64))[i] = v
    return out


def compare(spec: dict, raster, theirs: dict | None = None, ours: dict | None = None):
    """The first (sample, step) where XyloSim and fxsim's ``simulate`` differ, or None.

    Compares spikes and Vmem, Isyn, Isyn2 of the hidden layer and spikes, Vmem, Isyn of the output
    layer at every step; returns ``{"sample", "layer", "neuron", "step", "what", "xylosim",
    "fxsim"}`` (step counted from 1; what is "spike", "vmem", "isyn" or "isyn2").
    """
    theirs = run_xylosim(spec, raster) if theirs is None else theirs
    ours = simulate(spec, raster) if ours is None else ours
    spk = {"hidden": "spikes", "output": "spikes_out"}
    best = None
    for what, suffix in (("vmem", ""), ("isyn", ""), ("isyn2", None)):
        names = ["hidden", "output"] if suffix is not None else ["hidden"]
        key = {"hidden": what, "output": f"{what}_out"}
        tv = {p: theirs[key[p]] for p in names}
        fv = {p: ours[key[p]] for p in names}
        ts = {p: theirs[spk[p]] for p in names} if what == "vmem" else {}
        fs = {p: ours[spk[p]] for p in names} if what == "vmem" else {}
        m = first_mismatch(names, tv, ts, fv, fs, target="xylosim")
        if m is None:
            continue
        if m["what"] == "v":
            m["what"] = what
        order = (m["sample"], m["step"], names.index(m["layer"]), m["what"] != "spike")
        if best is None or order < best[0]:
            best = (order, m)
    return None if best is None else best[1]
