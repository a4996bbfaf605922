"""The validation report: one JSON document, rendered as Markdown and plots (PNG)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np


def _clean(obj):
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def write_text(path: Path, text: str) -> None:
    """Write atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _fmt(v, pct=False):
    if v is None:
        return "–"
    if pct:
        return f"{100 * v:.2f} %"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class Report:
    """``data`` follows the documented layout: dataset, ann, reference, targets.<name>, ..."""

    def __init__(self, data: dict):
        self.data = _clean(data)

    def to_json(self) -> str:
        return json.dumps(self.data, indent=2, sort_keys=False)

    def summary_rows(self) -> list[tuple]:
        rows = []
        d = self.data
        if "ann" in d:
            rows.append(("ann", d["ann"].get("accuracy"), None, None, None))
        if "reference" in d:
            r = d["reference"]
            rows.append(("reference", r.get("accuracy"), r.get("agreement_with_ann"), None, r.get("spikes_per_neuron")))
        for name, r in d.get("targets", {}).items():
            rows.append((name, r.get("accuracy"), r.get("agreement_with_ann"), r.get("agreement_with_reference"),
                         r.get("spikes_per_neuron")))
        return rows

    def table(self) -> str:
        """The summary table as plain text (what ``make demo`` prints)."""
        head = f"{'model':<11}{'accuracy':>10}{'agree ANN':>11}{'agree ref':>11}{'spikes/neuron':>15}"
        lines = [head, "-" * len(head)]
        for name, acc, a_ann, a_ref, spn in self.summary_rows():
            lines.append(f"{name:<11}{_fmt(acc, True):>10}{_fmt(a_ann, True):>11}{_fmt(a_ref, True):>11}"
                         f"{_fmt(spn):>15}")
        ref = self.data.get("reference", {})
        if "max_activation_error" in ref:
            lines.append(f"reference: max |(t_max - t_i) - clipped ReLU activation| = {ref['max_activation_error']:.2e}")
        for name, r in self.data.get("targets", {}).items():
            if "bit_exact_with_fxsim" in r:
                verdict = "yes" if r["bit_exact_with_fxsim"] else f"NO, first mismatch {r.get('first_mismatch')}"
                lines.append(f"{name}: {r['samples']} samples, bit-exact with fxsim (spikes and v, every step): {verdict}")
            if "energy" in r:
                e = r["energy"]
                lines.append(f"{name}: energy {e['nJ_per_sample_mean']:.3g} nJ per sample ({e['label']})")
            if "first_spike_agreement_within_one_step" in r and r["first_spike_agreement_within_one_step"] is not None:
                lines.append(f"{name}: first spikes within one step of the reference: "
                             f"{100 * r['first_spike_agreement_within_one_step']:.2f} % of neurons")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        d = self.data
        ds = d.get("dataset", {})
        out = [f"# snncompile report: {d.get('model', {}).get('name', 'model')}", ""]
        out.append(f"Dataset **{ds.get('name')}**, split `{ds.get('split')}`, {ds.get('samples')} samples. "
                   f"{ds.get('description', '')}")
        if d.get("profile"):
            p = d["profile"]
            out.append(f"Profile **{p.get('name')}** ({p.get('title')}); {p.get('steps')} steps per window; "
                       f"{p.get('weight_bits')}-bit weights.")
        out += ["", "## Summary", "", "| model | accuracy | agreement with ANN | agreement with reference | spikes per neuron |",
                "|---|---|---|---|---|"]
        for name, acc, a_ann, a_ref, spn in self.summary_rows():
            out.append(f"| {name} | {_fmt(acc, True)} | {_fmt(a_ann, True)} | {_fmt(a_ref, True)} | {_fmt(spn)} |")
        sections = [("reference", d.get("reference"))] + list(d.get("targets", {}).items())
        for name, r in sections:
            if not r or "layers" not in r:
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
            if "spike_time_error" in r:
                out += ["", "spike-time error against the reference (window units):", "",
                        "| layer | mean | max | mean (grid steps) | fire/silent agreement |", "|---|---|---|---|---|"]
                for row in r["spike_time_error"]["layers"]:
                    out.append(f"| {row['name']} | {_fmt(row['mean'])} | {_fmt(row['max'])} | "
                               f"{_fmt(row['mean_steps'])} | {_fmt(row['fire_agreement'], True)} |")
            if "quantization" in r and r["quantization"] and "population" in r["quantization"][0]:
                out += ["", "quantization (Loihi LIF):", "", "| population | du | dv | vth_mant | v LSB | connections "
                        "(weight_exp, max rounding error) |", "|---|---|---|---|---|---|"]
                for row in r["quantization"]:
                    conns = ", ".join(f"{c['name']}: {c['weight_exp']}, {_fmt(c['max_rounding_error'])}"
                                      for c in row["connections"])
                    out.append(f"| {row['population']} | {row['du']} | {row['dv']} | {row['vth_mant']} | "
                               f"{_fmt(row['v_lsb'])} | {conns} |")
            elif "quantization" in r and r["quantization"]:
                out += ["", "quantization:", "", "| layer | weight_exp | weight scale | slope | threshold | "
                        "clipped | max rounding error |", "|---|---|---|---|---|---|---|"]
                for row in r["quantization"]:
                    out.append(f"| {row['layer']} | {row['weight_exp']} | {_fmt(row.get('weight_scale'))} | "
                               f"{row.get('slope')} | {row.get('threshold')} | {_fmt(row.get('clipped_fraction'), True)} | "
                               f"{_fmt(row.get('max_rounding_error'))} |")
            if "mapping" in r:
                mp = r["mapping"]
                out += ["", f"mapping ({mp.get('style')}): cores used {mp.get('cores_used', '–')} of "
                        f"{mp.get('cores_available') or '–'}", "",
                        "| layer | neurons | fan-in | synapses | cores |", "|---|---|---|---|---|"]
                for row in mp["layers"]:
                    out.append(f"| {row['layer']} | {row['neurons']} | {row['fan_in']} | {row['synapses']} | "
                               f"{row.get('cores', row.get('core', '–'))} |")
            if "energy" in r:
                e = r["energy"]
                out.append(f"\nenergy (**{e['label']}**): {e['nJ_per_sample_mean']:.3g} nJ per sample "
                           f"({e['synops_per_sample']:.4g} synaptic ops, {e['neuron_updates_per_sample']} neuron "
                           f"updates, {e['spikes_per_sample']:.4g} spikes); {e['source']}")
        if "sweep" in d:
            out += ["", "## Sweep: accuracy (bits x steps)", "", d["sweep"]["markdown"]]
        out.append("")
        return "\n".join(out)

    def plot(self, path: Path) -> Path | None:
        """Bar chart of spikes per neuron per layer for every run (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        runs = [("reference", self.data.get("reference"))] + list(self.data.get("targets", {}).items())
        runs = [(n, r) for n, r in runs if r and r.get("layers")]
        if not runs:
            return None
        names = [row["name"] for row in runs[0][1]["layers"]]
        fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(names)), 3.2))
        width = 0.8 / len(runs)
        for k, (label, r) in enumerate(runs):
            vals = {row["name"]: row["spikes_per_neuron"] for row in r["layers"]}
            ax.bar(np.arange(len(names)) + k * width, [vals.get(n, 0) for n in names], width, label=label)
        ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
        ax.set_ylabel("spikes per neuron")
        ax.legend()
        fig.tight_layout()
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
        os.close(fd)
        fig.savefig(tmp, dpi=110)
        plt.close(fig)
        os.replace(tmp, path)
        return path

    def write(self, out: Path) -> dict:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "report.json", self.to_json())
        write_text(out / "report.md", self.to_markdown())
        png = self.plot(out / "spikes_per_layer.png")
        return {"json": out / "report.json", "markdown": out / "report.md", "plot": png}
