"""Spiking networks of LIF-family neurons (foreign NIR graphs, eRBP output): the float
discrete-time reference (reference.py) and fxsim's bit-accurate simulation (fixed.py); the neuron
equations are in snncompile.neurons.lif, the quantizer in snncompile.quantize.lif."""
