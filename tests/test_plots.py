"""Every plot writes a non-empty PNG whose title (also stored in the PNG's Title chunk) says what
it shows and on how many samples."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from snncompile import plots
from snncompile.targets.base import LayerRun, Run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _title(path) -> str:
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    with Image.open(path) as im:
        assert im.size[0] > 100 and im.size[1] > 100
        return im.text["Title"]


def _no_temp_left(folder):
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def test_raster_plot_from_rasters_and_from_first_spike_times(tmp_path, rng):
    inp, raster = rng.random((20, 5)) < 0.1, rng.random((20, 8)) < 0.2
    times = np.array([3.0, np.inf, 1.5, -1])
    p = plots.raster_plot({"input": inp, "lif1": raster, "ttfs": times},
                          tmp_path / "raster.png", target="fxsim", sample=3, samples=100)
    total = int(inp.sum() + raster.sum()) + 2  # the first-spike times hold two spikes
    assert _title(p) == f"fxsim: spike raster of sample 3 ({total} spikes; run on 100 samples)"
    _no_temp_left(tmp_path)


def test_raster_data_of_a_run():
    times = np.array([[2, -1, 5], [1, 1, -1]])
    run = Run("fxsim", np.zeros((2, 2)), np.zeros(2, int), [LayerRun("h", "hidden", 3, np.array([2, 2]), times)],
              np.array([0, 0]))
    data = plots.raster_data(run, sample=1)
    assert list(data) == ["h"] and data["h"].tolist() == [1, 1, -1]
    t, i, n = plots._events(data["h"])
    assert t.tolist() == [1, 1] and i.tolist() == [0, 1] and n == 3


def test_spike_time_scatter(tmp_path, rng):
    t_ref = rng.random(200) + 1
    pairs = {"ttfs1": (t_ref, t_ref + rng.normal(0, 0.01, 200)), "ttfs2": (np.array([]), np.array([]))}
    p = plots.spike_time_scatter(pairs, tmp_path / "times.png", target="lava", samples=20)
    assert _title(p) == "lava vs float reference: spike times per layer (20 samples)"


def test_accuracy_heatmap_marks_failed_points(tmp_path):
    sweep = {"bits": [4, 8], "steps": [4, 8, 16],
             "results": [{"bits": b, "steps": k, "accuracy": None if (b, k) == (4, 4) else 0.5 + b * k / 400}
                         for b in (4, 8) for k in (4, 8, 16)]}
    p = plots.accuracy_heatmap(sweep, tmp_path / "sweep.png", samples=360)
    assert _title(p) == "fxsim accuracy over weight bits x K (360 samples)"


def test_finetune_curves(tmp_path):
    log = {"mode": "qat", "profile": "loihi2", "weight_bits": 4, "steps": 8, "monitor": "test",
           "monitor_samples": 360, "epoch": [0, 1, 2], "accuracy": [0.8, 0.85, 0.9],
           "spikes_per_hidden_neuron": [0.5, 0.45, 0.4], "train_loss": [None, 0.7, 0.5]}
    p = plots.finetune_curves(log, tmp_path / "ft.png")
    assert _title(p) == "fine-tuning (qat: 4-bit weights, K=8) on loihi2, monitored on 360 samples"


@pytest.mark.parametrize("pj", [None, {"synop": 23.6, "neuron_update": 52.0, "spike": 1.7}])
def test_energy_breakdown(tmp_path, pj):
    rows = [{"name": "ttfs1", "synaptic_operations": 1200.0, "spikes": 20.0, "membrane_updates": 340.0},
            {"name": "readout", "synaptic_operations": 150.0, "spikes": 0.0, "membrane_updates": None}]
    p = plots.energy_breakdown(rows, tmp_path / "e.png", target="fxsim", samples=1000, pj_per_op=pj)
    title = _title(p)
    assert title.startswith("fxsim: " + ("estimated energy per layer" if pj else "synaptic operations per layer"))
    assert title.endswith("(1000 samples)")
    if not pj:
        assert "total 1350" in title


def test_overwrite_is_atomic_and_keeps_one_file(tmp_path, rng):
    for _ in range(2):
        plots.raster_plot({"h": rng.random((5, 4)) < 0.5}, tmp_path / "r.png", target="t", samples=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.png"]
