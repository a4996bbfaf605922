r"""Compiled (numba) kernel of fxsim's closed-form integration for layers whose input map is one
(in x out) integer matrix (:class:`snncompile.ttfs.fixed.LinearMap` with ``mat``).

With weight exponent e < 0 the Dense output of each step is floored, a_k = (W s_k) >> -e (Lava's
rule), so the potential at the end of integration needs the sums per arrival step:

    z = beta + (sum_k (K - k) ((sum_{j : count_j = K - k} w_j) >> -e)) << act_shift,

and, for the wrap check, the bound sum_k |a_k| on |u| / 2**act_shift.  One pass per sample: the
weight rows of the inputs that spike are added into a (K x out) accumulator by arrival step, then
floored and weighted; no sort, no (K N x out) temporary.  Integer arithmetic throughout (exact;
the caller picks an accumulator dtype that holds the largest absolute row sum).  The kernel
releases the GIL (fxsim splits the batch over its own threads) and is cached on disk by numba
(compiled once per argument types, about a second).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def floored_step_sums(counts, w, steps, shift, act_shift, bias, acc, z, bound, need_bound):  # pragma: no cover
    """counts (n, in) ints in 0..steps (0: no spike); w (in, out) integer mantissas; acc (steps,
    out) scratch of the accumulator dtype; writes z (n, out) int64 and, when ``need_bound``,
    bound (n,) int64.  Raises ValueError on a count outside 0..steps."""
    n, n_in = counts.shape
    n_out = w.shape[1]
    for i in range(n):
        acc[:] = 0
        for j in range(n_in):
            c = counts[i, j]
            if c == 0:
                continue
            if c < 0 or c > steps:
                raise ValueError("TTFS input count outside 0..steps")
            k = steps - c
            for o in range(n_out):
                acc[k, o] += w[j, o]
        for o in range(n_out):
            z[i, o] = 0
        top = 0
        for k in range(steps):
            wk = steps - k
            for o in range(n_out):
                z[i, o] += wk * (np.int64(acc[k, o]) >> shift)
        if need_bound:
            for o in range(n_out):
                s = 0
                for k in range(steps):
                    s += abs(np.int64(acc[k, o]) >> shift)
                top = max(top, s)
            bound[i] = top
        for o in range(n_out):
            z[i, o] = bias[o] + (z[i, o] << act_shift)


@numba.njit(nogil=True, cache=True)
def row_events(active, fanout, count, synops):  # pragma: no cover
    """Per row of ``active`` (N, n): the number of nonzero entries into ``count`` (N,) int64 and the
    sum of the integer ``fanout`` (n,) int64 over them into ``synops`` (N,) int64 (branch-free)."""
    n_rows, n = active.shape
    for i in range(n_rows):
        c = 0
        s = 0
        for j in range(n):
            a = np.int64(active[i, j] != 0)
            c += a
            s += a * fanout[j]
        count[i] = c
        synops[i] = s
