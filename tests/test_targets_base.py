"""The target interface: runs cut to their first samples, the registry, spike helpers, run_target."""

from __future__ import annotations

import numpy as np
import pytest

from snncompile.errors import SnnCompileError
from snncompile.spikes import first_spike_steps, raster_from_steps, spike_counts
from snncompile.targets.base import REGISTRY, Inputs, LayerRun, Run, available_targets, get_target


def test_run_head_cuts_every_per_sample_array():
    lr = LayerRun("h", "hidden", 3, np.arange(5), np.zeros((5, 3)), np.ones(5), np.ones(5))
    run = Run("t", np.zeros((5, 2)), np.arange(5), [lr], np.arange(5), raw_logits=np.zeros((5, 2)),
              traces={"h": np.zeros((5, 4, 3))}, spikes={"h": np.zeros((5, 4, 3), bool)})
    h = run.head(2)
    assert h.samples == 2 and h.layers[0].spikes.tolist() == [0, 1] and h.traces["h"].shape == (2, 4, 3)
    assert h.spikes["h"].shape[0] == 2 and h.raw_logits.shape == (2, 2) and run.head(9) is run
    inp = Inputs(np.zeros((5, 3)), "latency-4", np.zeros((5, 3), int), 4).head(3)
    assert len(inp) == 3 and inp.spikes.shape == (3, 3)


def test_registry_is_public_and_unknown_names_are_errors():
    assert {"reference", "fxsim", "lava", "norse", "xylosim"} <= set(REGISTRY) == set(available_targets())
    with pytest.raises(SnnCompileError, match="unknown target 'nope'"):
        get_target("nope")


def test_spike_helpers_round_trip():
    steps = np.array([[3, -1, 1], [-1, -1, 4]])
    r = raster_from_steps(steps, 5)
    assert r.shape == (2, 5, 3) and r.sum() == 3
    np.testing.assert_array_equal(first_spike_steps(r), steps)
    assert spike_counts(r).tolist() == [[1, 0, 1], [0, 0, 1]]
