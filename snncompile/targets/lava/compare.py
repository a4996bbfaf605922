"""The earliest difference between a vendor simulator's run and fxsim's (one comparison for
every family and every vendor target)."""

from __future__ import annotations

import numpy as np

from ...errors import InvalidModel


def first_mismatch(names: list, theirs_v: dict, theirs_s: dict, fx_v: dict, fx_s: dict, offset: int = 0,
                   target: str = "lava"):
    """The earliest difference, ordered by (sample, step, population order, spike before v, neuron),
    or None when the runs agree bit for bit.

    ``*_v``: population -> (N, T, n) integer v; ``*_s``: population -> (N, T, n) spikes (a population
    missing from ``*_s`` has no spikes to compare, e.g. a readout).  ``offset`` is added to the
    reported sample index; ``target`` names the other simulator's field in the result.
    """
    best = None
    for li, name in enumerate(names):
        pairs = [(1, "v", theirs_v[name], fx_v[name])]
        if name in theirs_s and name in fx_s:
            pairs.insert(0, (0, "spike", theirs_s[name], fx_s[name]))
        for wi, what, a, b in pairs:
            a, b = np.asarray(a), np.asarray(b)
            if a.shape != b.shape:
                raise InvalidModel(f"population {name!r}: {target} {what} {a.shape} vs fxsim {b.shape}")
            diff = a != b
            if not diff.any():
                continue
            n_i, t_i, j_i = np.nonzero(diff)
            k = np.lexsort((j_i, t_i, n_i))[0]
            key = (int(n_i[k]), int(t_i[k]), li, wi, int(j_i[k]))
            if best is None or key < best[0]:
                best = (key, name, what, int(a[n_i[k], t_i[k], j_i[k]]), int(b[n_i[k], t_i[k], j_i[k]]))
    if best is None:
        return None
    (n, t, _, _, j), name, what, theirs, ours = best
    return {"sample": n + offset, "layer": name, "neuron": j, "step": t + 1, "what": what, target: theirs,
            "fxsim": ours}
