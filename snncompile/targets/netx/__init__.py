"""lava-dl netx, the Loihi 2 deployment format: ``--emit netx`` (:mod:`.write`) and the ``netx``
target (:mod:`.target`), which loads the written file with lava-dl's own loader and compares
every layer's spikes and v with fxsim.  lava-dl is imported only when a network runs
(:mod:`.compat`)."""

from .target import NetxTarget

__all__ = ["NetxTarget"]
