"""``params.npz``: a Lava plan (:mod:`.plan`) on disk, and back.

The one loader of Lava networks: the in-process target writes its plan here and runs what it
reads back, exactly as the standalone export does.  Every integer array (dense, or scipy CSR as
data/indices/indptr/shape) is stored as an array; everything else goes into ``meta_json``, with
``{"__array__": key}`` / ``{"__csr__": key}`` where an array was.  numpy only (scipy for CSR).
"""

from __future__ import annotations

import json

import numpy as np

VERSION = 2


def save_plan(plan: dict, path) -> None:
    arrays = {}

    def enc(obj, key):
        if isinstance(obj, np.ndarray):
            arrays[key] = obj
            return {"__array__": key}
        if hasattr(obj, "tocsr"):  # scipy sparse
            m = obj.tocsr()
            for part in ("data", "indices", "indptr"):
                arrays[f"{key}.{part}"] = getattr(m, part)
            arrays[f"{key}.shape"] = np.asarray(m.shape, np.int64)
            return {"__csr__": key}
        if isinstance(obj, dict):
            return {str(k): enc(v, f"{key}.{k}") for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [enc(v, f"{key}.{i}") for i, v in enumerate(obj)]
        if isinstance(obj, np.generic):
            return obj.item()
        return obj

    doc = {"format": "snncompile-lava-plan", "version": VERSION, "plan": enc(plan, "p")}
    with open(path, "wb") as f:
        np.savez_compressed(f, meta_json=np.array(json.dumps(doc)), **arrays)


def load_plan(path) -> dict:
    """The plan saved by :func:`save_plan`; ValueError naming the file if it is not one."""
    z = np.load(path, allow_pickle=False)
    try:
        doc = json.loads(str(z["meta_json"]))
    except KeyError:
        raise ValueError(f"{path}: not a snncompile Lava params.npz (no meta_json)") from None
    if doc.get("format") != "snncompile-lava-plan" or doc.get("version") != VERSION:
        raise ValueError(f"{path}: not a version-{VERSION} snncompile Lava plan")

    def dec(obj):
        if isinstance(obj, dict):
            if set(obj) == {"__array__"}:
                return z[obj["__array__"]]
            if set(obj) == {"__csr__"}:
                import scipy.sparse as sp

                key = obj["__csr__"]
                return sp.csr_matrix((z[f"{key}.data"], z[f"{key}.indices"], z[f"{key}.indptr"]),
                                     shape=tuple(int(s) for s in z[f"{key}.shape"]))
            return {k: dec(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [dec(v) for v in obj]
        return obj

    return dec(doc["plan"])
