"""Spike rasters, first-spike steps and spike counts: the one implementation of each.

A raster is (N, T, neurons) of 0/1 (step t is index t - 1); a first-spike step is 1..T, -1 for
a neuron that never fires.  numpy only (the standalone exports carry this module).
"""

from __future__ import annotations

import numpy as np


def first_spike_steps(raster: np.ndarray) -> np.ndarray:
    """(N, T, n) raster -> (N, n) first spike step (1-based, -1 = none)."""
    raster = np.asarray(raster) != 0
    return np.where(raster.any(axis=1), raster.argmax(axis=1) + 1, -1).astype(np.int64)


def raster_from_steps(steps: np.ndarray, t_total: int) -> np.ndarray:
    """(N, n) spike steps of fire-once neurons (-1 = none) -> (N, T, n) bool raster."""
    steps = np.asarray(steps)
    out = np.zeros((steps.shape[0], int(t_total), steps.shape[1]), bool)
    n, j = np.nonzero(steps >= 1)
    out[n, steps[n, j] - 1, j] = True
    return out


def spike_counts(raster: np.ndarray) -> np.ndarray:
    """(N, T, n) raster -> (N, n) spikes per neuron (int64)."""
    return (np.asarray(raster) != 0).sum(axis=1).astype(np.int64)
