"""``snncompile inspect``: a NIR file's (or a netx ``.net`` file's) nodes, edges, shapes, parameter ranges and our metadata."""

from __future__ import annotations

import numpy as np

from .ir import get_meta, read_nir
from .validation.timeconst import TAU_FIELDS, implied_dt


def _shape(t):
    if t is None:
        return None
    vals = list(t.values()) if isinstance(t, dict) else [t]
    v = vals[0] if vals else None
    return None if v is None else [int(s) for s in np.ravel(v)]


def describe(path) -> dict:
    if str(path).endswith(".net"):  # a lava-dl netx file, shown as the quantized LIF graph it reads into
        from .frontends.netx import read_netx

        graph = read_netx(path)
    else:
        graph = read_nir(path, type_check=False)
    nodes = []
    for name, node in graph.nodes.items():
        params = {}
        for key, val in vars(node).items():
            if key in ("metadata", "input_type", "output_type") or not isinstance(val, np.ndarray) or val.size == 0:
                continue
            if not np.issubdtype(val.dtype, np.number):
                continue
            fin = val[np.isfinite(val)] if np.issubdtype(val.dtype, np.floating) else val
            params[key] = {"shape": list(val.shape),
                           "min": float(fin.min()) if fin.size else None,
                           "max": float(fin.max()) if fin.size else None}
        entry = {"name": name, "type": type(node).__name__, "input": _shape(node.input_type),
                 "output": _shape(node.output_type), "params": params, "snncompile": get_meta(node)}
        if type(node).__name__ in TAU_FIELDS:  # NIR's tau is in seconds: the dt each exporter convention implies
            entry["time_constants"] = {f: params[f] for f in TAU_FIELDS[type(node).__name__] if f in params}
            entry["implied_dt"] = implied_dt(type(node).__name__, vars(node))
        nodes.append(entry)
    return {"file": str(path), "nodes": nodes, "edges": [list(e) for e in graph.edges],
            "snncompile": get_meta(graph)}


def render(info: dict) -> str:
    lines = [f"{info['file']}: {len(info['nodes'])} nodes, {len(info['edges'])} edges"]
    gm = info["snncompile"]
    if gm:
        keys = ["format", "form", "quantized", "profile", "steps", "weight_bits", "t_total", "zeta"]
        lines.append("graph metadata: " + ", ".join(f"{k}={gm[k]}" for k in keys if k in gm))
    lines.append("")
    for n in info["nodes"]:
        lines.append(f"{n['name']:<18} {n['type']:<10} in={n['input']} out={n['output']}")
        for key, p in n["params"].items():
            lines.append(f"    {key:<12} shape={p['shape']} range=[{p['min']}, {p['max']}]")
        if n.get("implied_dt"):
            dts = ", ".join(f"{k}: {'n/a' if v is None else f'{v:g}'}" for k, v in n["implied_dt"].items())
            lines.append(f"    implied dt   {dts}  (pass the one that matches the exporter as --dt)")
        meta = {k: v for k, v in n["snncompile"].items() if not isinstance(v, (list, dict))}
        if meta:
            lines.append("    snncompile: " + ", ".join(f"{k}={v}" for k, v in sorted(meta.items())))
    lines.append("")
    lines.append("edges: " + ", ".join(f"{a}->{b}" for a, b in info["edges"]))
    return "\n".join(lines)
