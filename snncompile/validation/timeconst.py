"""Foreign NIR time constants against the simulation step ``dt``.

NIR gives τ in seconds and carries no dt; each exporter has its own convention (docs/nir.md):

* norse 1.1 ``to_nir(model, x, dt=1e-3)`` writes τ = dt / τ_inv (1e-5 for its default LIF at
  dt = 1e-3), r = 1;
* snnTorch 1.0 ``export_to_nir`` assumes dt = 1e-4: τ = dt / (1 − β), r = τ / dt (β = 0.9 →
  τ = 1e-3, r = 10);
* rockpool 3.1 writes CubaLIF τ_mem, τ_syn in seconds for its dt (typically 1e-3: 0.02, 0.01) and
  r ≈ τ / dt.

Our forward-Euler step multiplies the state by 1 − dt/τ.  τ < dt makes that factor negative (the
state flips sign every step, and the quantizer's decay register cannot hold it), so a τ shorter
than dt is an error that says which --dt the graph's convention implies.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidModel

TAU_FIELDS = {"LIF": ("tau",), "LI": ("tau",), "CubaLIF": ("tau_syn", "tau_mem"), "CubaLI": ("tau_syn", "tau_mem")}
CONVENTIONS = (
    ("norse to_nir", "tau = dt/tau_inv, so export with dt=1 or pass --dt <= tau"),
    ("snnTorch", "dt = 1e-4"),
    ("rockpool", "dt = 1e-3"),
)


def _arr(v):
    if v is None:
        return None
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=np.float64)


def implied_dt(kind: str, params: dict) -> dict:
    """The dt each known exporter convention implies for one neuron node's parameters
    ({convention: dt or None}); ``params``: field -> array (scalars broadcast)."""
    taus = [_arr(params.get(f)) for f in TAU_FIELDS.get(kind, ())]
    taus = [t for t in taus if t is not None and t.size]
    if not taus:
        return {}
    tau_mem = float(np.min(taus[-1]))
    r = _arr(params.get("r"))
    r = float(np.median(r)) if r is not None and r.size else 1.0
    out = {"steps (dt = 1)": 1.0}
    out["snnTorch / rockpool (dt = tau/r)"] = tau_mem / r if r > 1 else None
    # norse at its default dt 1e-3: tau_nir = 1e-3 * tau_true; time in steps needs dt <= tau_nir
    out["norse to_nir (tau = dt/tau_inv)"] = tau_mem if tau_mem < 1e-3 and r == 1 else None
    return out


def suggest_dt(kind: str, params: dict) -> float:
    """One --dt that makes every τ of the node >= dt: the convention's, else the smallest τ / 10."""
    taus = [_arr(params.get(f)) for f in TAU_FIELDS.get(kind, ())]
    tmin = min((float(np.min(t)) for t in taus if t is not None and t.size), default=1.0)
    conv = implied_dt(kind, params).get("snnTorch / rockpool (dt = tau/r)")
    if conv is not None and conv <= tmin * (1 + 1e-9):
        return float(f"{conv:.3g}")
    return float(f"{tmin:.3g}") if tmin > 0 else 1.0


def check_time_constants(name: str, kind: str, params: dict, dt: float, where: str = "") -> None:
    """InvalidModel (one line: layer, τ, dt, the fix) when a time constant of neuron node ``name`` is
    shorter than ``dt`` or not a positive number.  A separate function so every quantizer (Loihi,
    Xylo) and the loader call the same rule."""
    loc = f"{where}: " if where else ""
    if not (isinstance(dt, (int, float)) and np.isfinite(dt) and dt > 0):
        raise InvalidModel(f"{loc}dt = {dt!r}: the time step must be a positive finite number")
    for f in TAU_FIELDS.get(kind, ()):
        tau = _arr(params.get(f))
        if tau is None or tau.size == 0:
            continue
        if np.any(np.isnan(tau)) or np.any(tau <= 0):
            bad = tau[np.isnan(tau) | (tau <= 0)].ravel()[0]
            raise InvalidModel(f"{loc}node {name!r} ({kind}): {f} = {bad:g}; rule: time constants are > 0 seconds")
        tmin = float(np.min(tau))
        if tmin < dt * (1 - 1e-9):
            fix = suggest_dt(kind, params)
            conv = "; ".join(f"{n}: {c}" for n, c in CONVENTIONS)
            raise InvalidModel(
                f"{loc}node {name!r} ({kind}): {f} = {tmin:g} s is shorter than dt = {dt:g} s (dt/{f} = "
                f"{dt / tmin:.3g} > 1: the leak factor 1 - dt/tau is negative); pass --dt {fix:g} "
                f"(exporters: {conv}; docs/nir.md)")


def gain_error(name: str, kind: str, params: dict, dt: float, peak: float, state_bits: int,
               where: str = "") -> InvalidModel:
    """The one-line cause when a population's calibrated potential peaks so far above its threshold
    that the threshold mantissa rounds to 0 (the quantizer calls this before its ProfileViolation).

    The usual cause is an exporter convention: snnTorch and rockpool write r = tau/dt meaning "an input
    is a current held for one step" (v moves by r w dt/tau = w), while NIR's spikes are Dirac pulses
    (v moves by r w / tau = w/dt): at the exporter's dt every spike is 1/dt times too strong."""
    loc = f"{where}: " if where else ""
    taus = [_arr(params.get(f)) for f in TAU_FIELDS.get(kind, ())]
    taus = [t for t in taus if t is not None and t.size]
    r = _arr(params.get("r"))
    r = float(np.median(r)) if r is not None and r.size else 1.0
    head = (f"{loc}node {name!r} ({kind}): the potential peaks at {peak:.3g} thresholds on the calibration data, "
            f"beyond what a {state_bits}-bit state resolves (the threshold mantissa rounds to 0)")
    if taus:
        tau = float(np.min(taus[-1]))
        ratio = r * dt / tau
        if r > 1 and 0.5 <= ratio <= 2:
            return InvalidModel(
                f"{head}: r = {r:g} = tau/dt (tau = {tau:g} s, dt = {dt:g} s) is the snnTorch/rockpool convention "
                f"(inputs held for one step), but NIR spikes are pulses that move v by r*w/tau = w/dt; fix: export "
                f"with time in steps (dt = 1, r = 1) or scale r by dt/tau in the graph")
        return InvalidModel(f"{head}: r/tau = {r / tau:.3g} per unit of input at dt = {dt:g} s; rule: input "
                            "charge per step must stay within the state range (scale the weights or r down)")
    return InvalidModel(f"{head}; rule: input charge per step must stay within the state range (scale the weights "
                        "down)")
