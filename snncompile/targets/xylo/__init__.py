"""The Xylo target (SynSense Xylo Audio 2, ``syns61201``): rockpool's XyloSim, compared bit for bit
with our own Xylo arithmetic (:mod:`snncompile.neurons.xylo`).

* :mod:`.compat` makes ``rockpool.devices.xylo`` importable without samna (DESIGN.md section 9);
* :mod:`.sim` builds ``XyloSim.from_specification`` from a spec dict, runs rasters sample by sample
  and reports the first step where XyloSim and :func:`snncompile.neurons.xylo.simulate` differ.

Nothing here imports rockpool until a function needs it.
"""

from .target import XyloSimTarget

__all__ = ["XyloSimTarget"]
