"""report.md: the five-line summary first, sample counts and run times on every row, the
NeuroBench table, and links to plots that exist."""

from __future__ import annotations

import json
import re

import numpy as np

from snncompile.neurobench import SynapseLayer, metrics
from snncompile.plots import raster_plot
from snncompile.report import Report, _clean, write_text
from snncompile.targets.base import LayerRun, Run


def _nb(spikes_per_neuron, t_total=None, weight_bits=None):
    c = np.asarray(spikes_per_neuron)
    run = Run("t", np.zeros((len(c), 2)), np.zeros(len(c), int), [LayerRun("h", "hidden", c.shape[1], c.sum(1), c)],
              np.full(len(c), 2), info={} if t_total is None else {"t_total": t_total})
    layers = [SynapseLayer("fc1", "input", "h", np.ones((3, 2)), bias=np.zeros(3)),
              SynapseLayer("fc2", "h", "readout", np.array([[1.0, 0, 1], [0, 1, 1]]), bias=np.zeros(2))]
    return metrics(layers, run, 0.9, weight_bits=weight_bits, state_bits=24 if weight_bits else None,
                   input_counts=np.ones((len(c), 2)))


def _data():
    layers = [{"name": "h", "role": "hidden", "neurons": 3, "spikes": 1.5, "spikes_per_neuron": 0.5}]
    return {
        "model": {"name": "mlp"},
        "dataset": {"name": "digits", "split": "test", "samples": 360, "description": "sklearn digits"},
        "ann": {"accuracy": 0.95, "samples": 360, "run_seconds": 0.01,
                "neurobench": {**_nb([[1, 0, 1]]), "samples": 360, "synaptic_operations": {"effective_macs": 2400.0,
                                                                             "effective_acs": 0.0, "dense": 4000.0}}},
        "reference": {"samples": 360, "accuracy": 0.95, "agreement_with_ann": 1.0, "spikes_per_neuron": 0.41,
                      "run_seconds": 0.2, "layers": layers, "neurobench": _nb([[1, 0, 1], [0, 1, 1]])},
        "targets": {
            "fxsim": {"samples": 360, "accuracy": 0.9361, "agreement_with_ann": 0.97, "agreement_with_reference": 0.97,
                      "spikes_per_neuron": 0.43, "run_seconds": 0.5, "layers": layers,
                      "neurobench": _nb([[1, 1, 1], [0, 1, 1]], t_total=40, weight_bits=8),
                      "energy": {"label": "estimate", "source": "Davies 2018", "nJ_per_sample_mean": 12.0,
                                 "synops_per_sample": 900.0, "neuron_updates_per_sample": 400,
                                 "spikes_per_sample": 40.0,
                                 "pJ_per_op": {"synop": 23.6, "neuron_update": 52.0, "spike": 1.7}}},
            "lava": {"samples": 20, "accuracy": 0.95, "agreement_with_ann": 1.0, "spikes_per_neuron": 0.44,
                     "run_seconds": 31.5, "layers": layers, "bit_exact_with_fxsim": True, "first_mismatch": None},
        },
        "sweep": {"bits": [4, 8], "steps": [4, 8], "markdown": "| bits |",
                  "results": [{"bits": b, "steps": k, "accuracy": 0.5 + 0.05 * b} for b in (4, 8) for k in (4, 8)]},
    }


def test_markdown_opens_with_five_summary_lines():
    md = Report(_data()).to_markdown().splitlines()
    assert md[0] == "# snncompile report: mlp" and md[1] == ""
    five = md[2:7]
    assert all(line.startswith("- **") for line in five) and md[7] == ""
    best, drop, spikes, synops, exact = five
    # best target: the most accurate target (ties: more samples), with its sample count and the ANN's
    # best target: the most accurate of those run on the most samples (lava's 20 samples do not compete)
    assert best == ("- **Best target:** fxsim, 93.61 % accuracy on 360 samples (ANN 95.00 % on 360); "
                    "run on fewer samples: lava (20).")
    assert "fxsim 1.39 pp" in drop and "lava 0.00 pp (20 of 360 samples)" in drop and "vs reference" in drop
    assert "reference 0.41" in spikes and "fxsim 0.43" in spikes and "lava 0.44" in spikes
    assert "ann 2400 MACs" in synops and "reference" in synops and "ACs" in synops
    assert exact == "- **Bit-exactness:** lava is bit-exact with fxsim on 20 samples (spikes and v, every step)."


def test_summary_table_shows_samples_and_run_seconds():
    md = Report(_data()).to_markdown()
    head = "| model | samples | accuracy | agreement with ANN | agreement with reference | spikes per neuron | run seconds |"
    assert head in md
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in md.split(head)[1].split("\n\n")[0].splitlines()[2:]}
    assert rows["ann"][0] == "360" and rows["ann"][-1] == "0.01 s"
    assert rows["lava"][0] == "20" and rows["lava"][-1] == "31.5 s"
    assert rows["fxsim"][:2] == ["360", "93.61 %"]
    assert "different sample counts (20, 360)" in md
    text = Report(_data()).table()
    assert "samples" in text.splitlines()[0] and re.search(r"^lava\s+20\s", text, re.M)


def test_neurobench_table_has_a_row_per_model():
    d = _data()
    md = Report(d).to_markdown()
    assert "## NeuroBench metrics" in md
    nb_rows = [line for line in md.splitlines() if line.startswith("| ann | 360 | 1 |") or
               line.startswith("| reference | 2 | 1 |") or line.startswith("| fxsim | 2 | 40 |")]
    assert len(nb_rows) == 3
    fx = d["targets"]["fxsim"]["neurobench"]
    assert f"| {fx['footprint_bytes']} |" in nb_rows[2]
    # per-connection synaptic operations in the target's section
    assert "| fc2 | h → readout |" in md
    # approximations are listed, not hidden
    assert "Approximations:" in md and "an upper bound" in md


def test_write_links_every_plot_and_the_links_exist(tmp_path, rng):
    elsewhere = tmp_path / "elsewhere"
    given = raster_plot({"h": rng.random((10, 3)) < 0.3}, elsewhere / "raster_fxsim.png", target="fxsim", samples=360)
    out = tmp_path / "out"
    files = Report(_data()).write(out, plots={"fxsim: spike raster": given})
    md = (out / "report.md").read_text()
    links = re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", md)
    titles = [t for t, _ in links]
    assert "fxsim: spike raster" in titles and "accuracy over weight bits x K" in titles
    assert "spikes per neuron per layer" in titles and "fxsim: energy per layer" in titles
    for _, target in links:
        assert (out / target).is_file() and (out / target).stat().st_size > 0
    assert (out / "raster_fxsim.png").is_file()  # copied next to the report
    assert files["plot"] == out / "spikes_per_layer.png"
    assert json.loads((out / "report.json").read_text())["targets"]["lava"]["samples"] == 20


def test_clean_and_write_text_still_work(tmp_path):
    assert _clean({"a": np.float32(1.5), "b": [np.inf, np.int64(2)], 3: np.arange(2)}) == \
        {"a": 1.5, "b": [None, 2], "3": [0, 1]}
    write_text(tmp_path / "x" / "f.txt", "hello")
    assert (tmp_path / "x" / "f.txt").read_text() == "hello"


def test_report_without_neurobench_or_vendor_target_says_so():
    d = _data()
    del d["targets"]["lava"]
    for sec in (d["ann"], d["reference"], d["targets"]["fxsim"]):
        sec.pop("neurobench")
    md = Report(d).to_markdown().splitlines()
    assert md[5] == "- **Synaptic operations per inference** (NeuroBench effective): not computed."
    assert md[6] == "- **Bit-exactness:** no vendor simulator was compared with fxsim in this run."
    assert "## NeuroBench metrics" not in "\n".join(md)
