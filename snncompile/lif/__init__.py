"""Spiking networks of LIF-family neurons (foreign NIR graphs, eRBP output): the float
discrete-time reference, the mapping to Loihi's stock LIF, and its bit-accurate simulation."""
