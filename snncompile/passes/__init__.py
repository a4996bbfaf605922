"""The compile passes, one module per neuron family plus the shared ones; the driver
(:mod:`snncompile.pipeline`) lists them in order."""
