"""The validation report: one JSON document, rendered as Markdown and plots (PNG).

``report.md`` opens with a five-line summary a person reads first (best target, accuracy drop
against the ANN and the float reference, spikes per neuron, synaptic operations per inference,
bit-exactness), then the summary table -- every row with its sample count and run time, so rows
on different sample counts are never compared silently --, the NeuroBench table
(``snncompile.neurobench``; neurobench 2.3.0 definitions), the per-target sections and the plots.

Layout of the data (DESIGN.md, "Report conventions"): ``model``, ``dataset`` (``samples``...),
``profile``, ``ann`` (``accuracy``, ``neurobench``), ``reference`` and ``targets.<name>``
(``samples``, ``run_seconds``, ``accuracy``, ``agreement_with_*``, ``spikes_per_neuron``,
``layers``, ``neurobench``, ``energy``, ``bit_exact_with_fxsim``...), ``sweep``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from .ir import json_clean, write_text


def _clean(obj):
    return json_clean(obj, nonfinite=lambda x: None)


def _fmt(v, pct=False):
    if v is None:
        return "–"
    if pct:
        return f"{100 * v:.2f} %"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _num(v, spec: str) -> str:
    """A number for the Markdown report; None (a non-finite value after JSON cleaning) and inf/nan are words."""
    if v is None:
        return "–"
    v = float(v)
    return format(v, spec) if np.isfinite(v) else str(v)


def _secs(v) -> str:
    return "–" if v is None else f"{v:.3g} s"


def _ops(v) -> str:
    if v is None:
        return "–"
    v = float(v)
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"


class Report:
    """``data`` follows the documented layout (module docstring)."""

    def __init__(self, data: dict):
        self.data = _clean(data)

    def to_json(self) -> str:
        return json.dumps(self.data, indent=2, sort_keys=False)

    # ---- what the rows are ---------------------------------------------------------------

    def runs(self) -> list[tuple[str, dict]]:
        """(name, section) of the reference and every target, in report order."""
        d = self.data
        out = [("reference", d["reference"])] if d.get("reference") else []
        return out + [(n, r) for n, r in d.get("targets", {}).items() if r]

    def summary_rows(self) -> list[dict]:
        """One row per model: name, samples, accuracy, agreements, spikes per neuron, run seconds."""
        d = self.data
        rows = []
        if "ann" in d:
            a = d["ann"]
            rows.append({"name": "ann", "samples": a.get("samples", d.get("dataset", {}).get("samples")),
                         "accuracy": a.get("accuracy"), "agreement_with_ann": None, "agreement_with_reference": None,
                         "spikes_per_neuron": None, "run_seconds": a.get("run_seconds")})
        for name, r in self.runs():
            rows.append({"name": name, "samples": r.get("samples"), "accuracy": r.get("accuracy"),
                         "agreement_with_ann": r.get("agreement_with_ann"),
                         "agreement_with_reference": None if name == "reference" else r.get("agreement_with_reference"),
                         "spikes_per_neuron": r.get("spikes_per_neuron"), "run_seconds": r.get("run_seconds")})
        return rows

    def neurobench_rows(self) -> list[tuple[str, dict]]:
        d = self.data
        out = [("ann", d["ann"]["neurobench"])] if d.get("ann", {}).get("neurobench") else []
        return out + [(n, r["neurobench"]) for n, r in self.runs() if r.get("neurobench")]

    # ---- the five lines ------------------------------------------------------------------

    def summary_lines(self) -> list[str]:
        """The five lines a person reads first (Markdown bullets)."""
        d = self.data
        ann = d.get("ann", {})
        ann_acc = ann.get("accuracy")
        ann_n = ann.get("samples", d.get("dataset", {}).get("samples"))
        ref = d.get("reference") or {}
        runs = self.runs()
        scored = [(n, r) for n, r in runs if r.get("accuracy") is not None]
        targets = [(n, r) for n, r in scored if n != "reference"] or scored
        if targets:
            # compared on equal footing: the most accurate of the targets run on the most samples
            most = max(r.get("samples") or 0 for _, r in targets)
            name, best = max(((n, r) for n, r in targets if (r.get("samples") or 0) == most),
                             key=lambda nr: nr[1]["accuracy"])
            fewer = [f"{n} ({r.get('samples')})" for n, r in targets if (r.get("samples") or 0) < most]
            line1 = (f"- **Best target:** {name}, {_fmt(best['accuracy'], True)} accuracy on {best.get('samples')} "
                     "samples" + (f" (ANN {_fmt(ann_acc, True)} on {ann_n})" if ann_acc is not None else "")
                     + (f"; run on fewer samples: {', '.join(fewer)}" if fewer else "") + ".")
        else:
            line1 = "- **Best target:** no target was evaluated."

        def drops(base, base_n, exclude):
            parts = []
            for n, r in scored:
                if n == exclude:
                    continue
                pp = 100 * (base - r["accuracy"])
                same = r.get("samples") == base_n
                parts.append(f"{n} {pp:.2f} pp" + ("" if same else f" ({r.get('samples')} of {base_n} samples)"))
            return ", ".join(parts) or "–"

        parts = []
        if ann_acc is not None:
            parts.append(f"vs ANN: {drops(ann_acc, ann_n, None)}")
        if ref.get("accuracy") is not None:
            parts.append(f"vs reference: {drops(ref['accuracy'], ref.get('samples'), 'reference')}")
        line2 = ("- **Accuracy drop** (percentage points lost; negative: gained): " + ("; ".join(parts) or "nothing to compare")
                 + ".")
        spn = [f"{n} {_fmt(r.get('spikes_per_neuron'))}" for n, r in runs if r.get("spikes_per_neuron") is not None]
        line3 = "- **Spikes per neuron** (hidden and output populations, per sample): " + (", ".join(spn) or "–") + "."
        ops = []
        for n, nb in self.neurobench_rows():
            so = nb.get("synaptic_operations", {})
            if so.get("effective_macs"):
                ops.append(f"{n} {_ops(so['effective_macs'])} MACs")
            if so.get("effective_acs") or not so.get("effective_macs"):
                ops.append(f"{n} {_ops(so.get('effective_acs'))} ACs")
        line4 = "- **Synaptic operations per inference** (NeuroBench effective): " + (
            ", ".join(ops) if ops else "not computed") + "."
        exact = []
        for n, r in runs:
            if "bit_exact_with_fxsim" in r:
                if r["bit_exact_with_fxsim"]:
                    exact.append(f"{n} is bit-exact with fxsim on {r.get('samples')} samples (spikes and v, every step)")
                else:
                    exact.append(f"{n} is NOT bit-exact with fxsim (first mismatch {json.dumps(r.get('first_mismatch'))})")
        line5 = "- **Bit-exactness:** " + ("; ".join(exact) if exact else
                                           "no vendor simulator was compared with fxsim in this run") + "."
        return [line1, line2, line3, line4, line5]

    # ---- text and Markdown ---------------------------------------------------------------

    def table(self) -> str:
        """The summary table as plain text (what ``make demo`` prints)."""
        head = (f"{'model':<11}{'samples':>8}{'accuracy':>10}{'agree ANN':>11}{'agree ref':>11}{'spikes/neuron':>15}"
                f"{'run (s)':>10}")
        lines = [head, "-" * len(head)]
        for r in self.summary_rows():
            lines.append(f"{r['name']:<11}{_fmt(r['samples']):>8}{_fmt(r['accuracy'], True):>10}"
                         f"{_fmt(r['agreement_with_ann'], True):>11}{_fmt(r['agreement_with_reference'], True):>11}"
                         f"{_fmt(r['spikes_per_neuron']):>15}{_secs(r['run_seconds']):>10}")
        ref = self.data.get("reference", {}) or {}
        if "max_activation_error" in ref:
            lines.append(f"reference: max |(t_max - t_i) - clipped ReLU activation| = {ref['max_activation_error']:.2e}")
        for name, r in self.data.get("targets", {}).items():
            if "bit_exact_with_fxsim" in r:
                verdict = "yes" if r["bit_exact_with_fxsim"] else f"NO, first mismatch {r.get('first_mismatch')}"
                lines.append(f"{name}: {r.get('samples')} samples, bit-exact with fxsim (spikes and v, every step): "
                             f"{verdict}")
            if "energy" in r:
                e = r["energy"]
                lines.append(f"{name}: energy {_num(e['nJ_per_sample_mean'], '.3g')} nJ per sample ({e['label']})")
            if "first_spike_agreement_within_one_step" in r and r["first_spike_agreement_within_one_step"] is not None:
                lines.append(f"{name}: first spikes within one step of the reference: "
                             f"{100 * r['first_spike_agreement_within_one_step']:.2f} % of neurons")
        return "\n".join(lines)

    def _neurobench_md(self) -> list[str]:
        rows = self.neurobench_rows()
        if not rows:
            return []
        out = ["", "## NeuroBench metrics", "",
               "Definitions of neurobench 2.3.0, computed from each target's own run (`snncompile.neurobench`): "
               "footprint in bytes as stored on the target, operations and updates per inference, sparsities as "
               "fractions; T = time steps per sample (1 for one-pass float runs).", "",
               "| model | samples | T | footprint (B) | parameters | connection sparsity | activation sparsity | "
               "effective MACs | effective ACs | dense synops | membrane updates | accuracy |",
               "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        notes = []
        for name, nb in rows:
            so = nb.get("synaptic_operations", {})
            out.append(f"| {name} | {_fmt(nb.get('samples'))} | {_fmt(nb.get('time_steps'))} | "
                       f"{_fmt(nb.get('footprint_bytes'))} | {_fmt(nb.get('parameter_count'))} | "
                       f"{_fmt(nb.get('connection_sparsity'))} | {_fmt(nb.get('activation_sparsity'))} | "
                       f"{_ops(so.get('effective_macs'))} | {_ops(so.get('effective_acs'))} | {_ops(so.get('dense'))} | "
                       f"{_ops(nb.get('membrane_updates'))} | {_fmt(nb.get('classification_accuracy'), True)} |")
            notes += [f"- {name}: {a}" for a in nb.get("approximations", [])]
        if notes:
            out += ["", "Approximations:", ""] + notes
        return out

    def to_markdown(self, plots: dict | None = None) -> str:
        """The report as Markdown; ``plots``: title -> file name (relative to the report) to link."""
        d = self.data
        ds = d.get("dataset", {})
        out = [f"# snncompile report: {d.get('model', {}).get('name', 'model')}", ""]
        out += self.summary_lines()
        out += ["", f"Dataset **{ds.get('name')}**, split `{ds.get('split')}`, {ds.get('samples')} samples. "
                f"{ds.get('description', '')}"]
        if d.get("profile"):
            p = d["profile"]
            out.append(f"Profile **{p.get('name')}** ({p.get('title')}); {p.get('steps')} steps per window; "
                       f"{p.get('weight_bits')}-bit weights.")
        out += ["", "## Summary", "",
                "| model | samples | accuracy | agreement with ANN | agreement with reference | spikes per neuron | "
                "run seconds |", "|---|---|---|---|---|---|---|"]
        for r in self.summary_rows():
            out.append(f"| {r['name']} | {_fmt(r['samples'])} | {_fmt(r['accuracy'], True)} | "
                       f"{_fmt(r['agreement_with_ann'], True)} | {_fmt(r['agreement_with_reference'], True)} | "
                       f"{_fmt(r['spikes_per_neuron'])} | {_secs(r['run_seconds'])} |")
        counts = {r["samples"] for r in self.summary_rows() if r["samples"] is not None}
        if len(counts) > 1:
            out.append(f"\nRows were evaluated on different sample counts ({', '.join(str(c) for c in sorted(counts))}): "
                       "compare accuracies only between rows with the same count.")
        out += self._neurobench_md()
        for name, r in self.runs():
            if "layers" not in r:
                continue
            out += ["", f"## {name}: layers", ""]
            keys = ["name", "role", "neurons", "spikes", "spikes_per_neuron"]
            extra = [k for k in ("saturations", "wraps") if any(k in row for row in r["layers"])]
            out.append("| " + " | ".join(keys + extra) + " |")
            out.append("|" + "---|" * (len(keys) + len(extra)))
            for row in r["layers"]:
                out.append("| " + " | ".join(_fmt(row.get(k)) for k in keys + extra) + " |")
            for key in ("max_activation_error", "input_spikes_per_sample", "bit_exact_with_fxsim", "steps"):
                if key in r:
                    out.append(f"\n{key.replace('_', ' ')}: {_fmt(r[key])}")
            if r.get("first_mismatch"):
                out.append(f"\nfirst mismatch: `{json.dumps(r['first_mismatch'])}`")
            nb = r.get("neurobench") or {}
            if nb.get("per_layer"):
                out += ["", "NeuroBench synaptic operations per connection (per inference):", "",
                        "| connection | source → destination | synapses | effective ACs | dense | exact |",
                        "|---|---|---|---|---|---|"]
                for row in nb["per_layer"]:
                    out.append(f"| {row['name']} | {row['src']} → {row['dst']} | {_fmt(row.get('synapses'))} | "
                               f"{_ops(row.get('effective_acs'))} | {_ops(row.get('dense'))} | "
                               f"{_fmt(row.get('exact'))} |")
            if "spike_time_error" in r:
                out += ["", "spike-time error against the reference (window units):", "",
                        "| layer | mean | max | mean (grid steps) | fire/silent agreement |", "|---|---|---|---|---|"]
                for row in r["spike_time_error"]["layers"]:
                    out.append(f"| {row['name']} | {_fmt(row['mean'])} | {_fmt(row['max'])} | "
                               f"{_fmt(row['mean_steps'])} | {_fmt(row['fire_agreement'], True)} |")
            if "quantization" in r and r["quantization"] and "dash_mem" in r["quantization"][0]:
                out += ["", "quantization (Xylo LIF):", "", "| population | dash_syn | dash_mem | threshold | v LSB |",
                        "|---|---|---|---|---|"]
                for row in r["quantization"]:
                    if "dash_mem" in row:
                        out.append(f"| {row['population']} | {row['dash_syn']} | {row['dash_mem']} | "
                                   f"{_fmt(row['threshold'])} | {_fmt(row['v_lsb'])} |")
                    else:
                        out.append(f"\nweight shifts {row['shifts']}, max rounding error {row['max_rounding_error']}")
            elif "quantization" in r and r["quantization"] and "population" in r["quantization"][0]:
                out += ["", "quantization (Loihi LIF):", "", "| population | du | dv | vth_mant | v LSB | connections "
                        "(weight_exp, max rounding error) |", "|---|---|---|---|---|---|"]
                for row in r["quantization"]:
                    conns = ", ".join(f"{c['name']}: {c['weight_exp']}"
                                      + (f" + {c['split']['weight_exp']} (split)" if "split" in c else "")
                                      + f", {_fmt(c['max_rounding_error'])}" for c in row["connections"])
                    out.append(f"| {row['population']} | {row['du']} | {row['dv']} | {row['vth_mant']} | "
                               f"{_fmt(row['v_lsb'])} | {conns} |")
            elif "quantization" in r and r["quantization"]:
                out += ["", "quantization:", "", "| layer | weight_exp | weight scale | slope | threshold | "
                        "clipped | max rounding error |", "|---|---|---|---|---|---|---|"]
                for row in r["quantization"]:
                    out.append(f"| {row['layer']} | {row['weight_exp']} | {_fmt(row.get('weight_scale'))} | "
                               f"{row.get('slope')} | {row.get('threshold')} | {_fmt(row.get('clipped_fraction'), True)} | "
                               f"{_fmt(row.get('max_rounding_error'))} |")
            if "mapping" in r and r["mapping"]:
                mp = r["mapping"]
                out += ["", f"mapping ({mp.get('style')}): cores used {mp.get('cores_used', '–')} of "
                        f"{mp.get('cores_available') or '–'}", "",
                        "| layer | neurons | fan-in | synapses | cores |", "|---|---|---|---|---|"]
                for row in mp["layers"]:
                    out.append(f"| {row['layer']} | {row['neurons']} | {row['fan_in']} | {row['synapses']} | "
                               f"{row.get('cores', row.get('core', '–'))} |")
            if "energy" in r:
                e = r["energy"]
                out.append(f"\nenergy (**{e['label']}**): {_num(e['nJ_per_sample_mean'], '.3g')} nJ per sample "
                           f"({_num(e['synops_per_sample'], '.4g')} synaptic ops, {e['neuron_updates_per_sample']} "
                           f"neuron updates, {_num(e['spikes_per_sample'], '.4g')} spikes); {e['source']}")
        if "sweep" in d and d["sweep"].get("markdown"):
            out += ["", "## Sweep: accuracy (bits x steps)", "", d["sweep"]["markdown"]]
        if plots:
            out += ["", "## Plots", ""]
            for title, fname in plots.items():
                out += [f"![{title}]({fname})", ""]
        out.append("")
        return "\n".join(out)

    # ---- plots ---------------------------------------------------------------------------

    def plot(self, path: Path) -> Path | None:
        """Bar chart of spikes per neuron per layer for every run (PNG)."""
        from .plots import pyplot, save_figure

        plt = pyplot()
        runs = [(n, r) for n, r in self.runs() if r.get("layers")]
        if not runs:
            return None
        names = [row["name"] for row in runs[0][1]["layers"]]
        fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(names)), 3.2))
        width = 0.8 / len(runs)
        for k, (label, r) in enumerate(runs):
            vals = {row["name"]: row["spikes_per_neuron"] for row in r["layers"]}
            ax.bar(np.arange(len(names)) + k * width, [vals.get(n, 0) for n in names], width,
                   label=f"{label} ({r.get('samples')} samples)")
        ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
        ax.set_xlabel("layer")
        ax.set_ylabel("spikes per neuron per sample")
        title = "spikes per neuron per layer"
        ax.set_title(title)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return save_figure(fig, path, title)

    def make_plots(self, folder: Path) -> dict:
        """The plots drawn from the report's own data: title -> PNG path."""
        from .neurobench import layer_breakdown
        from .plots import accuracy_heatmap, energy_breakdown

        folder = Path(folder)
        out = {}
        p = self.plot(folder / "spikes_per_layer.png")
        if p is not None:
            out["spikes per neuron per layer"] = p
        if "sweep" in self.data and self.data["sweep"].get("results"):
            out["accuracy over weight bits x K"] = accuracy_heatmap(
                self.data["sweep"], folder / "sweep_heatmap.png",
                samples=self.data["sweep"].get("samples", self.data.get("dataset", {}).get("samples")))
        for name, r in self.runs():
            nb = r.get("neurobench") or {}
            rows = layer_breakdown(nb)
            if rows:
                pj = (r.get("energy") or {}).get("pJ_per_op")
                out[f"{name}: {'energy' if pj else 'synaptic operations'} per layer"] = energy_breakdown(
                    rows, folder / f"synops_{name}.png", target=name, samples=nb.get("samples"), pj_per_op=pj)
        return out

    def write(self, folder: Path, plots: dict | None = None) -> dict:
        """Write report.json, report.md and the plots into ``folder``.

        ``plots``: title -> PNG already drawn (``snncompile.plots``), copied into ``folder`` if it
        lies elsewhere; the report's own plots (:meth:`make_plots`) are added.  report.md links
        every plot that exists.  Returns ``{"json", "markdown", "plot", "plot_<stem>"...}`` paths.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        produced = self.make_plots(folder)
        linked = {}
        for title, path in {**produced, **(plots or {})}.items():
            path = Path(path)
            if not path.is_file():
                continue
            if path.resolve().parent != folder.resolve():
                dest = folder / path.name
                if dest.name in {p.name for p in linked.values()}:  # two plots of one name: keep both
                    dest = folder / f"{len(linked)}_{path.name}"
                shutil.copyfile(path, dest)
                path = dest
            linked[title] = path
        write_text(folder / "report.json", self.to_json())
        write_text(folder / "report.md", self.to_markdown({t: p.name for t, p in linked.items()}))
        files = {"json": folder / "report.json", "markdown": folder / "report.md",
                 "plot": linked.get("spikes per neuron per layer")}
        for path in linked.values():
            files.setdefault(f"plot_{path.stem}", path)
        return files
