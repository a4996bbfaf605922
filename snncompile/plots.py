"""The report's plots (PNG), each from plain data (dicts and arrays), never from pipeline objects.

Every plot has a title naming what it shows and how many samples it summarizes, axis labels
with units, and is written atomically (a temporary file in the destination folder, then
``os.replace``), so a reader never sees half a PNG.  matplotlib runs with the Agg backend and
is imported only when a plot is drawn.

    raster_plot          spike raster of one sample of one target
    spike_time_scatter   fixed-point vs float-reference spike times, per TTFS layer
    accuracy_heatmap     sweep accuracy over weight bits x steps per window K
    finetune_curves      fine-tuning log: accuracy, spikes per hidden neuron, training loss
    energy_breakdown     synaptic operations (and energy, given pJ per op) per layer

Two helpers turn runs into that plain data: :func:`raster_data` (one sample of a Run) and
:func:`ttfs_time_pairs` (reference vs fixed-point spike times, the conversion of
``snncompile.validate.ttfs_time_error``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, title: str) -> Path:
    """Write ``fig`` to ``path`` atomically (temp file in the same folder, then rename); the
    title also goes into the PNG's ``Title`` text chunk (what tests and tools can read back)."""
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, format="png", metadata={"Title": title, "Software": "snncompile"})
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _samples(n) -> str:
    return "samples: ?" if n is None else f"{int(n)} sample{'s' if int(n) != 1 else ''}"


# ---- raster ----------------------------------------------------------------------------------

def raster_data(run, sample: int = 0) -> dict:
    """One sample of a run as ``{population: events}``: the recorded raster (T, neurons) where the
    run has one, else the first-spike times (neurons,) (TTFS: the only spike)."""
    out = {}
    for la in run.layers:
        if run.spikes is not None and la.name in run.spikes:
            out[la.name] = np.asarray(run.spikes[la.name][sample]).reshape(-1, la.neurons)
        elif la.times is not None:
            out[la.name] = np.asarray(la.times[sample], dtype=np.float64).reshape(-1)
    return out


def _events(arr) -> tuple[np.ndarray, np.ndarray, int]:
    """(times, neuron indices, neurons) of a (T, n) raster (steps 1..T) or (n,) first-spike times."""
    a = np.asarray(arr)
    if a.ndim == 2:
        t, i = np.nonzero(a)
        return t + 1.0, i, a.shape[1]
    t = a.astype(np.float64)
    fired = np.isfinite(t) & (t >= 0)
    return t[fired], np.nonzero(fired)[0], a.shape[0]


def raster_plot(populations: dict, path, *, target: str, sample: int = 0, samples: int | None = None,
                time_unit: str = "steps", t_total: float | None = None) -> Path:
    """Spike raster of one sample: populations stacked bottom-up (input first if given).

    ``populations``: name -> a (T, neurons) 0/1 raster (time = step 1..T) or a (neurons,) array
    of first-spike times (inf or -1 = no spike).  ``samples``: how many samples the run
    evaluated (shown in the title).  ``time_unit``: "steps" or "window units"; ``t_total``: the
    run's length (the time axis then spans the whole run).
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    offset, ticks, labels, total = 0, [], [], 0
    for k, (name, arr) in enumerate(populations.items()):
        t, i, n = _events(arr)
        ax.scatter(t, i + offset, s=4, marker="|", color=f"C{k % 10}", label=f"{name} ({len(t)} spikes)")
        ticks.append(offset + n / 2)
        labels.append(name)
        total += len(t)
        offset += n
        ax.axhline(offset - 0.5, color="0.8", lw=0.5)
    ax.set_yticks(ticks, labels)
    ax.set_ylim(-0.5, max(offset, 1) - 0.5)
    if t_total:
        ax.set_xlim(0, float(t_total) + 1)
    ax.set_xlabel(f"time ({time_unit})")
    ax.set_ylabel("neuron (by population)")
    title = f"{target}: spike raster of sample {sample} ({total} spikes; run on {_samples(samples)})"
    ax.set_title(title)
    if populations:
        ax.legend(loc="upper right", fontsize=7, markerscale=3)
    fig.tight_layout()
    return save_figure(fig, path, title)


# ---- spike times: fixed point vs reference -------------------------------------------------------

def ttfs_time_pairs(ref_run, float_net, fx_run, q_net) -> dict:
    """Per hidden layer: (t_ref, t_fx) in window units for the neurons that fire in both runs
    (:func:`snncompile.validate.ttfs_spike_times`)."""
    from .validate import ttfs_spike_times

    out = {}
    for name, (t_ref, t_fx, _) in ttfs_spike_times(ref_run, float_net, fx_run, q_net).items():
        both = np.isfinite(t_ref) & np.isfinite(t_fx)
        out[name] = (t_ref[both], t_fx[both])
    return out


def spike_time_scatter(pairs: dict, path, *, target: str = "fxsim", samples: int | None = None,
                       max_points: int = 20000, seed: int = 0) -> Path:
    """Fixed-point vs float-reference spike times, one panel per layer, with the diagonal.

    ``pairs``: layer -> (t_ref, t_fx), arrays of the same length (window units; neurons that
    fire in both runs).  At most ``max_points`` points per panel are drawn (a seeded subset).
    """
    plt = pyplot()
    n = max(1, len(pairs))
    fig, axes = plt.subplots(1, n, figsize=(max(6.0, 3.8 * n), 4.0), squeeze=False)
    rng = np.random.default_rng(seed)
    for ax, (name, (t_ref, t_fx)) in zip(axes[0], pairs.items()):
        t_ref, t_fx = np.asarray(t_ref, dtype=np.float64), np.asarray(t_fx, dtype=np.float64)
        idx = np.arange(len(t_ref))
        if len(idx) > max_points:
            idx = np.sort(rng.choice(idx, max_points, replace=False))
        ax.scatter(t_ref[idx], t_fx[idx], s=3, alpha=0.4)
        if len(t_ref):
            lo, hi = float(min(t_ref.min(), t_fx.min())), float(max(t_ref.max(), t_fx.max()))
            ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
            err = float(np.abs(t_fx - t_ref).mean())
            ax.set_title(f"{name}: {len(t_ref)} spikes, mean |error| {err:.3g}", fontsize=9)
        else:
            ax.set_title(f"{name}: no spike in both runs", fontsize=9)
        ax.set_xlabel("reference spike time (window units)")
        ax.set_ylabel(f"{target} spike time (window units)")
    if not pairs:
        axes[0][0].set_xlabel("reference spike time (window units)")
        axes[0][0].set_ylabel(f"{target} spike time (window units)")
    title = f"{target} vs float reference: spike times per layer ({_samples(samples)})"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, title)


# ---- sweep heatmap -----------------------------------------------------------------------------

def accuracy_heatmap(sweep: dict, path, *, samples: int | None = None, target: str = "fxsim") -> Path:
    """Accuracy over weight bits (rows) x steps per window K (columns) from a sweep.

    ``sweep``: ``{"bits": [...], "steps": [...], "results": [{"bits", "steps", "accuracy"}, ...]}``
    (``snncompile.pipeline.sweep``); an accuracy of None (the point did not compile) is left
    blank and marked "–".  ``samples``: the evaluated samples (default ``sweep["samples"]``).
    """
    plt = pyplot()
    bits, steps = list(sweep["bits"]), list(sweep["steps"])
    grid = np.full((len(bits), len(steps)), np.nan)
    for row in sweep.get("results", []):
        if row.get("accuracy") is not None and row["bits"] in bits and row["steps"] in steps:
            grid[bits.index(row["bits"]), steps.index(row["steps"])] = 100.0 * row["accuracy"]
    samples = sweep.get("samples") if samples is None else samples
    fig, ax = plt.subplots(figsize=(1.1 * len(steps) + 2.5, 0.6 * len(bits) + 2))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto", origin="lower")
    for i in range(len(bits)):
        for j in range(len(steps)):
            v = grid[i, j]
            ax.text(j, i, "–" if np.isnan(v) else f"{v:.1f}", ha="center", va="center", fontsize=8,
                    color="k" if np.isnan(v) or v >= np.nanmean(grid) else "w")
    ax.set_xticks(range(len(steps)), [str(k) for k in steps])
    ax.set_yticks(range(len(bits)), [str(b) for b in bits])
    ax.set_xlabel("steps per window K")
    ax.set_ylabel("weight bits")
    fig.colorbar(im, ax=ax, label="accuracy (%)")
    title = f"{target} accuracy over weight bits x K ({_samples(samples)})"
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path, title)


# ---- fine-tuning ---------------------------------------------------------------------------------

def finetune_curves(log: dict, path) -> Path:
    """Fine-tuning log (``snncompile.train.finetune``: ``epoch``, ``accuracy``,
    ``spikes_per_hidden_neuron``, ``train_loss`` lists; ``mode``, ``weight_bits``, ``steps``,
    ``monitor``, ``monitor_samples``): accuracy and spikes per hidden neuron on the monitoring
    split, and the training loss, per epoch."""
    plt = pyplot()
    epochs = list(log["epoch"])
    fig, (ax, axl) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax.plot(epochs, [100 * a for a in log["accuracy"]], marker="o", color="C0")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"accuracy on {log.get('monitor', 'monitor split')} (%)", color="C0")
    ax2 = ax.twinx()
    ax2.plot(epochs, log["spikes_per_hidden_neuron"], marker="s", color="C1")
    ax2.set_ylabel("spikes per hidden neuron", color="C1")
    loss = [(e, v) for e, v in zip(epochs, log.get("train_loss", [])) if v is not None]
    axl.plot([e for e, _ in loss], [v for _, v in loss], marker="o", color="C2")
    axl.set_xlabel("epoch")
    axl.set_ylabel("training loss (cross-entropy, nats)")
    axl.set_title("training loss", fontsize=9)
    from matplotlib.ticker import MaxNLocator

    for a in (ax, axl):
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    what = f"{log.get('mode', '?')}: {log.get('weight_bits', '?')}-bit weights, K={log.get('steps', '?')}"
    ax.set_title("accuracy and spikes per hidden neuron", fontsize=9)
    title = f"fine-tuning ({what}) on {log.get('profile', '?')}, monitored on {_samples(log.get('monitor_samples'))}"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, title)


# ---- energy / synaptic operations per layer -----------------------------------------------------

def energy_breakdown(rows: list[dict], path, *, target: str, samples: int | None = None,
                     pj_per_op: dict | None = None) -> Path:
    """Per layer (population): synaptic operations per inference, or the energy they cost.

    ``rows``: ``[{"name", "synaptic_operations", "spikes", "membrane_updates"}, ...]`` per
    sample (``snncompile.neurobench.layer_breakdown``).  With ``pj_per_op``
    (``{"synop", "neuron_update", "spike"}`` in pJ, the profile's figures) the bars are the
    estimated energy in nJ per inference, stacked by kind; without, synaptic operations.  The
    neuron updates are NeuroBench's membrane updates where traces were recorded (potentials
    that changed), so the total can be below a target's own estimate that counts every neuron
    on every step.
    """
    plt = pyplot()
    names = [r["name"] for r in rows]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6.5, 1.2 * len(names) + 2), 3.8))
    syn = np.array([float(r.get("synaptic_operations") or 0.0) for r in rows])
    if pj_per_op:
        upd = np.array([float(r.get("membrane_updates") or 0.0) for r in rows])
        spk = np.array([float(r.get("spikes") or 0.0) for r in rows])
        parts = [("synaptic ops", syn * pj_per_op.get("synop", 0.0) / 1e3),
                 ("neuron updates", upd * pj_per_op.get("neuron_update", 0.0) / 1e3),
                 ("spikes", spk * pj_per_op.get("spike", 0.0) / 1e3)]
        bottom = np.zeros(len(names))
        for label, vals in parts:
            ax.bar(x, vals, 0.6, bottom=bottom, label=label)
            bottom += vals
        ax.set_ylabel("energy per inference (nJ, estimate)")
        ax.legend(fontsize=8)
        what = f"estimated energy per layer, total {bottom.sum():.3g} nJ"
    else:
        ax.bar(x, syn, 0.6, color="C0")
        ax.set_ylabel("synaptic operations per inference")
        what = f"synaptic operations per layer, total {syn.sum():.4g}"
    ax.set_xticks(x, names)
    ax.set_xlabel("layer (destination population)")
    title = f"{target}: {what} ({_samples(samples)})"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, title)


__all__ = ["raster_data", "raster_plot", "ttfs_time_pairs", "spike_time_scatter", "accuracy_heatmap",
           "finetune_curves", "energy_breakdown"]
