"""Make lava-dl 0.6.0's ``netx`` (and SLAYER's core) importable here without editing site-packages.

Two problems, both at import time (DESIGN.md section 10):

* lava-dl sits on lava-nc 0.10.0, which needs the Python 3.11 fix of
  :mod:`snncompile.targets.lava.compat` (reused as it is: :func:`require_lava`).
* ``lava/lib/dl/slayer/__init__.py`` ends with ``from . import object_detection as obd``, and
  that subpackage imports cv2 and torchvision (a CUDA torchvision build fails to load against
  our CPU torch; never install it).  netx imports SLAYER (``hdf5.py`` reads
  ``slayer.neuron.rf``), so nothing of netx loads.  :func:`require_netx` registers an empty
  module under ``lava.lib.dl.slayer.object_detection`` in :data:`sys.modules` before the
  import; only that one subpackage is replaced, every other module loads normally.

Nothing is imported when this module is imported.
"""

from __future__ import annotations

import importlib.util
import sys
import types

from ...errors import TargetUnavailable
from ..lava.compat import INSTALL_HINT as LAVA_INSTALL_HINT
from ..lava.compat import require_lava

STUBBED = "lava.lib.dl.slayer.object_detection"
INSTALL_HINT = (f"{LAVA_INSTALL_HINT} && pip install --no-deps --ignore-requires-python lava-dl==0.6.0 ninja")


def stub_object_detection() -> None:
    """An empty ``lava.lib.dl.slayer.object_detection`` in ``sys.modules`` (idempotent)."""
    if STUBBED not in sys.modules:
        mod = types.ModuleType(STUBBED, "stub registered by snncompile.targets.netx.compat "
                                        "(needs cv2/torchvision, unused by netx)")
        mod.__path__ = []  # a package: ``from .object_detection import x`` fails with a clear ImportError
        sys.modules[STUBBED] = mod


def netx_available() -> bool:
    """lava-dl is installed (nothing imported)."""
    try:
        return importlib.util.find_spec("lava.lib.dl") is not None
    except (ImportError, ValueError):
        return False


def require_netx():
    """Import ``lava.lib.dl.netx`` (and Lava, with its fixes); :class:`TargetUnavailable` naming
    the install command when lava-nc or lava-dl is missing."""
    require_lava()
    stub_object_detection()
    try:
        import lava.lib.dl.netx as netx
    except ImportError as exc:
        raise TargetUnavailable(f"lava-dl is not installed: {INSTALL_HINT} ({exc})") from None
    return netx


def require_slayer():
    """Import ``lava.lib.dl.slayer`` (training side; tests and examples only)."""
    require_netx()
    try:
        import lava.lib.dl.slayer as slayer
    except ImportError as exc:
        raise TargetUnavailable(f"lava-dl's SLAYER cannot be imported: {INSTALL_HINT} ({exc})") from None
    return slayer


def export_slayer_dense(path, sizes, seed: int = 0, steps: int = 8, batch: int = 1):
    """Build a SLAYER network of ``block.cuba.Dense`` layers (``sizes`` = (inputs, hidden..., outputs);
    threshold 1, current decay 0.25, voltage decay 0.03), run one forward pass on random input
    spikes (slayer needs it before ``export_hdf5``) and export it to the netx file ``path``: what a
    lava-dl user ships.  Tests and benchmarks use it as a foreign netx file."""
    import h5py
    import torch

    slayer = require_slayer()
    torch.manual_seed(seed)
    params = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03, "requires_grad": False}
    blocks = torch.nn.ModuleList([slayer.block.cuba.Dense(params, a, b, weight_norm=False, weight_scale=4)
                                  for a, b in zip(sizes[:-1], sizes[1:])])
    x = (torch.rand(batch, sizes[0], steps) < 0.3).float()
    for b in blocks:
        x = b(x)
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer")
        for i, b in enumerate(blocks):
            b.export_hdf5(layer.create_group(f"{i}"))
    return path
