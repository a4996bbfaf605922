"""``--emit xylo``: the quantized Xylo specification and a program that runs it without snncompile.

The folder holds ``spec.npz`` (every array argument of ``XyloSim.from_specification``),
``spec.json`` (the scalar arguments, the populations, the readout rule), ``inputs.npz`` (the
first encoded samples, padded to the compiled run length), ``snnrt/`` (exact copies of
:mod:`.standalone`, :mod:`.sim`, :mod:`.compat` and the modules they import), ``run_xylo.py``
(three lines) and a README.  Written to a temporary sibling, then renamed into place.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ...errors import InvalidModel
from ...ir import get_meta
from ...lif.xylo import xylo_raster
from ...quantize.lif_xylo import xylo_spec

RUNTIME = ("errors.py", "spikes.py", "neurons/xylo.py", "targets/lava/compare.py", "targets/xylo/compat.py",
           "targets/xylo/sim.py", "targets/xylo/standalone.py")
PACKAGES = ("", "neurons/", "targets/", "targets/lava/", "targets/xylo/")

LAUNCHER = '''#!/usr/bin/env python3
"""Run the exported Xylo network: see README.md (python run_xylo.py --help)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from snnrt.targets.xylo.standalone import main  # noqa: E402

sys.exit(main(["--folder", HERE] + sys.argv[1:]))
'''

README = """# Xylo program for `{model}`

A LIF network quantized by snncompile for **{profile}** (`--emit xylo`).  It runs on rockpool's
XyloSim (xylosim's C++ core) without snncompile, or on a connected Xylo Audio 2 board through samna
(`--device`; not tested by snncompile, which has no board).

| file | what |
|---|---|
| `spec.npz`, `spec.json` | the arguments of `XyloSim.from_specification`: int8 weights (in {win}, recurrent {wrec}, out {wout}), weight shifts {shifts}, dash_syn / dash_mem, thresholds, biases, dt = {dt} |
| `inputs.npz` | (if present) `spikes` (N, T = {t_total}, {n_in}): input spike counts per step |
| `run_xylo.py`, `snnrt/` | the program: snncompile's own Xylo modules, copied whole |

```
pip install rockpool==3.1.0 pybind11 && pip install --no-build-isolation xylosim==0.1.3   # never samna from PyPI
python run_xylo.py
```

Populations in the hidden pool: {pops}; readout `{readout}` ({rule}).
"""


def emit(qgraph, folder, family: str, inputs) -> Path:
    if family != "lif" or get_meta(qgraph).get("arithmetic") != "xylo":
        raise InvalidModel("--emit xylo needs a LIF graph compiled for a Xylo profile (--profile xylo-audio2)")
    spec = xylo_spec(qgraph)
    meta = get_meta(qgraph)
    om = get_meta(qgraph.nodes["output"])
    arrays = {k: v for k, v in spec.items() if isinstance(v, np.ndarray)}
    scalars = {k: v for k, v in spec.items() if not isinstance(v, np.ndarray) and v is not None}
    x = None if inputs is None or inputs.spikes is None else xylo_raster(qgraph, inputs.spikes)
    t_total = int(x.shape[1]) if x is not None else int(meta["depth"]) + 1
    info = {"scalars": scalars, "populations": meta["xylo_populations"], "readout": meta["xylo_readout"],
            "readout_spiking": bool(om.get("spiking", True)), "v_lsb_out": float(om.get("v_lsb", 1.0)),
            "t_total": t_total, "profile": meta.get("profile")}
    pkg = Path(__file__).resolve().parents[2]
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        np.savez_compressed(tmp / "spec.npz", **arrays)
        (tmp / "spec.json").write_text(json.dumps(info, indent=1))
        if x is not None:
            np.savez_compressed(tmp / "inputs.npz", spikes=x)
        for rel in RUNTIME:
            (tmp / "snnrt" / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / "snnrt" / rel).write_text((pkg / rel).read_text())
        for p in PACKAGES:
            (tmp / "snnrt" / p / "__init__.py").write_text('"""Runtime modules copied from snncompile."""\n')
        (tmp / "run_xylo.py").write_text(LAUNCHER)
        (tmp / "run_xylo.py").chmod(0o755)
        (tmp / "README.md").write_text(README.format(
            model=meta.get("name") or "model.q.nir", profile=meta.get("profile"), win=spec["weights_in"].shape,
            wrec=spec["weights_rec"].shape, wout=spec["weights_out"].shape,
            shifts=(spec["weight_shift_in"], spec["weight_shift_rec"], spec["weight_shift_out"]), dt=spec["dt"],
            t_total=t_total, n_in=spec["weights_in"].shape[0],
            pops=", ".join(f"`{k}` {v[0]}..{v[1] - 1}" for k, v in meta["xylo_populations"].items()),
            readout=meta["xylo_readout"], rule="output spike counts" if info["readout_spiking"]
            else "mean output potential"))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
