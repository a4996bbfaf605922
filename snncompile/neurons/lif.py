"""Leaky integrate-and-fire neurons: the float dynamics of NIR's LIF family and Loihi's integer LIF.

Float (NIR semantics, forward Euler, time step dt; q = the synaptic charge of the step, a spike
through weight w is a jump of w, exactly):

    LIF      v <- v (1 - dt/tau) + (dt/tau) v_leak + (r/tau) q
    CubaLIF  I <- I (1 - dt/tau_syn) + (w_in/tau_syn) q;  v <- v (1 - dt/tau_mem) + (dt/tau_mem)(v_leak + r I)
    IF       v <- v + r q
    LI, CubaLI, I: as LIF, CubaLIF, IF without spiking;   Threshold: v <- q / dt (memoryless)
    spiking: s = v > v_threshold (strict); v <- v_reset where s.              (:func:`float_step`)

Integer (Lava 0.10.0 ``PyLifModelBitAcc``; DESIGN.md section 8), per step, with a = the summed
Dense outputs of the step (an int32 port), trunc0 = shift toward zero:

    u = wrap_bits(wrap32(trunc0(u (2**D - (du + 1)) >> D) + wrap32(a << act_shift)))   single-pass wrap
    v = sat(trunc0(v (2**D - dv) >> D) + u + bias)
    s = v > theta (theta = vth_mant << vth_shift);  v[s] = 0                    (:func:`loihi_step`)

A "non-spiking" population is an LIF whose threshold is the largest mantissa: it fires only if v
saturates above it, which the quantizer's headroom prevents.  The readout of a network is the
spike count of its readout population, or for a non-spiking readout the mean of its v
(:func:`readout_scores`).

numpy and :mod:`snncompile.arith` only (the standalone exports carry this module); the float
step also runs on torch tensors (it uses operators only).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..arith import decay, saturate, wrap, wrap32

SPIKING_KINDS = ("LIF", "CubaLIF", "IF", "Threshold")
KINDS = SPIKING_KINDS + ("LI", "CubaLI", "I")


@dataclass(frozen=True)
class LifParams:
    """One population's integer LIF parameters (node metadata of a quantized LIF graph; the
    per-neuron bias lives in the node's ``v_leak``)."""

    spiking: bool
    du: int
    dv: int
    vth_mant: int
    v_lsb: float       # one v LSB in units of the float neuron's threshold

    @classmethod
    def from_meta(cls, meta: dict) -> LifParams:
        return cls(bool(meta["spiking"]), int(meta["du"]), int(meta["dv"]), int(meta["vth_mant"]),
                   float(meta["v_lsb"]))

    def to_meta(self) -> dict:
        return asdict(self)

    def theta(self, vth_shift: int) -> int:
        return self.vth_mant << vth_shift


def float_step(kind: str, state: dict, c: dict, q, dt: float, drive: bool = True):
    """One float step of a population (module docstring); ``state`` holds "v" and "i" and gets
    "pre" (v before the reset, for calibration).  Returns the output: spikes (0/1 floats) for
    spiking kinds, the potential for the others."""
    v = state["v"]
    leak = c.get("v_leak", 0.0) if drive else 0.0
    if kind in ("LIF", "LI"):
        v = v * (1 - dt / c["tau"]) + (dt / c["tau"]) * leak + (c["r"] / c["tau"]) * q
    elif kind in ("CubaLIF", "CubaLI"):
        i = state["i"] * (1 - dt / c["tau_syn"]) + (c["w_in"] / c["tau_syn"]) * q
        state["i"] = i
        v = v * (1 - dt / c["tau_mem"]) + (dt / c["tau_mem"]) * (leak + c["r"] * i)
    elif kind in ("IF", "I"):
        v = v + c["r"] * q
    elif kind == "Threshold":
        v = q / dt
    state["pre"] = v
    if kind in SPIKING_KINDS:
        thr = c["threshold"] if kind == "Threshold" else c["v_threshold"]
        s = (v > thr) * 1.0
        if kind != "Threshold":
            v = v * (1 - s) + c["v_reset"] * s
        state["v"] = v
        return s
    state["v"] = v
    return v


def loihi_step(u, v, a, p: LifParams, bias, state_bits: int, act_shift: int, decay_bits: int,
               vth_shift: int, wraps=None, sats=None):
    """One integer step (module docstring) on (N, neurons) int64 arrays; returns (u, v, spikes)."""
    shifted = wrap32(wrap32(a) << act_shift)  # Lava's int32 port and int32 shift
    u = wrap(wrap32(decay(u, p.du, decay_bits, offset=1) + shifted), state_bits, wraps)
    v = saturate(decay(v, p.dv, decay_bits, offset=0) + u + bias, state_bits, sats)
    s = v > p.theta(vth_shift)
    return u, np.where(s, 0, v), s


def readout_scores(spiking: bool, counts=None, v_sum=None, v_lsb: float = 1.0, t_total: int = 1):
    """(integer raw scores, float scores) of a readout: spike counts, or the summed integer v and its
    mean in float units (v_lsb / T) for a non-spiking readout."""
    if spiking:
        raw = np.asarray(counts).astype(np.int64)
        return raw, raw.astype(np.float64)
    raw = np.asarray(v_sum).astype(np.int64)
    return raw, raw * v_lsb / t_total
