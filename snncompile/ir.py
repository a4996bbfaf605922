"""Reading and writing NIR files, and our metadata convention.

Everything NIR has no field for (TTFS windows, fire-once, steps, bit widths, scales,
exponents, profile name) lives in node or graph ``metadata["snncompile"]`` as one JSON
string, so it survives ``nir.write`` -> ``nir.read`` unchanged (NIR stores metadata in
HDF5, where nested dicts and lists come back as numpy objects; a string comes back as a
string).  See docs/nir.md.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import nir
import numpy as np

from . import METADATA_KEY
from .errors import InvalidModel


def json_clean(value, nonfinite=str):
    """``value`` with numpy arrays and scalars turned into lists and Python numbers, dict keys into
    strings, tuples into lists; a non-finite float becomes ``nonfinite(x)`` (JSON has no inf/nan):
    ``str`` keeps it readable ("inf") in metadata, ``lambda x: None`` gives JSON null in reports."""
    if isinstance(value, dict):
        return {str(k): json_clean(v, nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_clean(v, nonfinite) for v in value]
    if isinstance(value, np.ndarray):
        return json_clean(value.tolist(), nonfinite)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return nonfinite(value)
    return value


def get_meta(obj) -> dict:
    """Our metadata of a NIR node or graph ({} when absent)."""
    meta = getattr(obj, "metadata", None) or {}
    raw = meta.get(METADATA_KEY)
    if raw is None:
        return {}
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    if isinstance(raw, np.ndarray) and raw.shape == ():
        raw = raw.item()
        raw = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    if isinstance(raw, dict):
        return raw
    try:
        data = json.loads(raw)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidModel(f"metadata[{METADATA_KEY!r}] is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidModel(f"metadata[{METADATA_KEY!r}] is a JSON {type(data).__name__}; rule: a JSON object")
    return data


def set_meta(obj, data: dict) -> None:
    """Store ``data`` (JSON-serializable; numpy values are converted) as our metadata."""
    if not isinstance(getattr(obj, "metadata", None), dict):
        obj.metadata = {}
    obj.metadata[METADATA_KEY] = json.dumps(json_clean(data), sort_keys=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically: to a temporary file next to ``path``, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_nir(graph: nir.NIRGraph, path: str | Path) -> Path:
    """Write a graph atomically: to a temporary file next to ``path``, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        nir.write(tmp, graph)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_nir(path: str | Path, type_check: bool = True) -> nir.NIRGraph:
    """Read a NIR file; any failure becomes one InvalidModel line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InvalidModel(f"NIR file not found: {path}")
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "node" not in f:
                raise InvalidModel(f"{path}: not a NIR file (HDF5 without a 'node' group)")
    except (OSError, RuntimeError, ValueError, KeyError) as exc:  # h5py raises RuntimeError on a corrupt heap
        what = "" if isinstance(exc, OSError) else f": {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        raise InvalidModel(f"{path}: not a NIR file (not HDF5, truncated or corrupt{what})") from None
    try:
        graph = nir.read(path, type_check=type_check)
    except InvalidModel:
        raise
    except Exception as exc:  # nir raises ValueError/KeyError/AssertionError/TypeError on bad content
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidModel(f"{path}: cannot read NIR graph: {msg}") from None
    if not isinstance(graph, nir.NIRGraph):
        raise InvalidModel(f"{path}: the top node is a {type(graph).__name__}, not a NIRGraph")
    return graph
