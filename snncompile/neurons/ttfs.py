"""The TTFS neuron (B1 form of Stanojevic et al.): float dynamics and the integer program.

Float (window units; the input window is [0, 1]).  A hidden neuron of layer n with window
[t_min, t_max], B = t_max - t_min, integrates its inputs until t_min,

    V(t_min) = sum_j W_j (t_min - t_j) + b,        then rises with slope 1,

so it crosses the threshold V = B once, at t = t_min + B - V(t_min) (clipped to t_min from
below; no spike if t >= t_max): its activation t_max - t = clip(V(t_min), 0, B) is the
clipped ReLU of the pre-activation.  A max-pool neuron fires at its earliest input (a min-pool
neuron, on a channel whose BatchNorm scale is negative, at its latest: once every input of its
window has arrived, none if one never does); the readout never fires and V(t_min) is the logit.
(:func:`float_spike_time`.)

Integer (steps t = 1..T of one sample; u, v are ``state_bits`` wide; a = the Dense output
of the previous step's spikes, already shifted by the weight exponent).  Per step, in order:

    1. t <= t_in_end:                    u = wrap(u + (a << act_shift)); v = sat(v + u)   integrate
       elif fire_start <= t <= fire_end: v = sat(v + r)                                   ramp
    2. fire_start <= t <= fire_end:      s = (v > theta) & ~fired; fired |= s; v[s] = 0   fire once

wrap is Lava's single-pass wrap of u, sat clips v to +-(2**(state_bits-1) - 1)
(:mod:`snncompile.arith`).  Before the first input arrives (step ``arrival``) u = 0 and a = 0,
so step 1 changes nothing on u.  Inputs travel as spike counts c in 0..K: a count-c spike
arrives at step arrival + K - c and is integrated for c steps, so without wraps or saturation
v(t_in_end) = beta + sum_j w_j c_j 2**(act_shift + e).  A hidden neuron then fires at ramp step
f (step t_in_end + f) with f the first f in 1..K where v + f r > theta, i.e. count
c_out = K + 1 - f; theta = K r + floor(r / 2) makes c_out = round-half-down(z / r) clipped to
[0, K] (:func:`fire_closed`).  The readout is the same program with an empty fire window.

:func:`integer_step` is the only implementation of the integer program: fxsim's stepped mode
calls it on (samples x neurons) arrays, the Lava process model on one population, and the
standalone Lava export carries this module.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from ..arith import saturate, wrap

NO_SPIKE = np.inf
INT_FIELDS = ("weight_exp", "slope", "threshold", "arrival", "t_in_end", "fire_start", "fire_end", "steps")


@dataclass(frozen=True)
class TtfsParams:
    """One population's integer TTFS parameters (node metadata of model.q.nir; bias per neuron
    lives in the node's ``v_leak``)."""

    role: str          # hidden | maxpool | readout
    steps: int         # K
    weight_exp: int    # e of the Dense in front of the neuron
    slope: int         # r
    threshold: int     # theta
    arrival: int       # step at which a count-K input arrives
    t_in_end: int
    fire_start: int
    fire_end: int

    @classmethod
    def from_meta(cls, meta: dict, role: str | None = None) -> TtfsParams:
        """From node metadata; KeyError names the missing field."""
        return cls(role or meta["role"], *(int(meta[k]) for k in ("steps", "weight_exp", "slope", "threshold",
                                                                   "arrival", "t_in_end", "fire_start", "fire_end")))

    def to_meta(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_meta(), sort_keys=True)

    @property
    def fires(self) -> bool:
        return self.role != "readout" and self.fire_start <= self.fire_end


def float_spike_time(v_tmin: np.ndarray, t_min: float, t_max: float, B: float | None = None) -> np.ndarray:
    """Spike time of hidden neurons whose potential at t_min is ``v_tmin`` (window units; inf: none);
    ``B`` = t_max - t_min as stored with the layer (computed when not given)."""
    t = np.maximum(t_min + (t_max - t_min if B is None else B) - v_tmin, t_min)
    return np.where(t < t_max, t, NO_SPIKE)


def integer_step(u, v, fired, a, t: int, p: TtfsParams, state_bits: int, act_shift: int,
                 wraps=None, sats=None, u_threshold=None):
    """One step of the integer program (module docstring) on arrays of any shape.

    ``a``: this step's Dense output (int64, same shape as u); ``t``: step within the sample;
    ``wraps`` / ``sats``: optional (N,) int64 counters, incremented per row.  ``u_threshold``:
    None, or per neuron (last axis) an int, >= 0 for a min-pool neuron, which fires on
    u > u_threshold instead of v > theta (with u_threshold = (k*k - 1) << act_shift: once all k*k
    inputs of its window have arrived, i.e. at its latest input), -1 for the others.  Returns
    (u, v, fired, s).
    """
    if t <= p.t_in_end:
        u = wrap(u + (np.asarray(a, dtype=np.int64) << act_shift), state_bits, wraps)
        v = saturate(v + u, state_bits, sats)
    elif p.fire_start <= t <= p.fire_end:
        v = saturate(v + p.slope, state_bits, sats)
    if p.fires and p.fire_start <= t <= p.fire_end:
        cross = v > p.threshold
        if u_threshold is not None:
            ut = np.asarray(u_threshold, dtype=np.int64)
            cross = np.where(ut >= 0, u > ut, cross)
        s = cross & ~fired
        fired = fired | s
        v = np.where(s, 0, v)
    else:
        s = np.zeros(np.shape(v), bool)
    return u, v, fired, s


def fire_closed(p: TtfsParams, z: np.ndarray, vmax: int):
    """Ramp phase in closed form for neurons whose integration ended at v = z (no saturation
    during integration).  Returns (spike step or -1, output count, saturation events per row)."""
    K, r, theta = p.steps, p.slope, p.threshold
    # in place where possible: fresh arrays of this size cost more (page faults) than the arithmetic
    if r > 0:  # f = 1 where z > theta, else the first f with z + f r > theta
        f = np.subtract(theta, z)
        f //= r
        f += 1
        np.maximum(f, 1, out=f)
    else:
        f = np.where(z > theta, 1, K + 1)
    counts = np.subtract(K + 1, f)
    np.maximum(counts, 0, out=counts)  # f > K: no spike in the window
    f += p.t_in_end
    f[f > p.t_in_end + K] = -1         # the spike step, -1 where none
    sats = np.count_nonzero(z > max(theta, vmax - r), axis=1)  # fires at the first ramp step, v + r saturates
    return f, counts, sats


def output_counts(p: TtfsParams, spike_step: np.ndarray) -> np.ndarray:
    """Spike step -> the count the next population reads (max-pool: passes its input's count on)."""
    base = p.arrival + p.steps if p.role == "maxpool" else p.t_in_end + p.steps + 1
    return np.where(spike_step >= 0, base - spike_step, 0)

