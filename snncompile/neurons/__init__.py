"""Neuron families: one module per family, each the one home of its neuron.

* :mod:`.ttfs` -- the fire-once time-to-first-spike neuron (the exact ReLU mapping);
* :mod:`.lif` -- leaky integrate-and-fire neurons (Loihi's stock LIF arithmetic).

Each module holds the parameter dataclass (``to_meta`` / ``from_meta``: the NIR metadata),
the float dynamics, **the** integer step (used by fxsim, run by the Lava process models and
copied into the standalone exports) and the closed form where one exists.  The modules import
numpy and :mod:`snncompile.arith` only, so an export can carry them whole.
"""
