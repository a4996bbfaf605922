"""ONNX tensors and attributes read without trusting the file.

``onnx.numpy_helper.to_array`` reshapes the raw data to the declared ``dims`` (a mismatch is a
numpy ValueError deep inside onnx) and ``helper.get_attribute_value`` raises TypeError on an
attribute of type UNDEFINED; these wrappers turn both, and non-finite weights, into one
InvalidModel naming the file, the tensor or node, and the rule.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidModel

TENSOR_NUMEL_MAX = 1 << 28


def tensor_array(t, path: str, what: str = "initializer") -> np.ndarray:
    from onnx import numpy_helper

    dims = [int(d) for d in t.dims]
    if any(d < 0 for d in dims) or math.prod(dims) > TENSOR_NUMEL_MAX:
        raise InvalidModel(f"ONNX file '{path}': {what} {t.name!r} declares dims {dims}; rule: non-negative, at most "
                           f"{TENSOR_NUMEL_MAX} values")
    try:
        arr = numpy_helper.to_array(t)
    except Exception as exc:  # onnx raises ValueError/TypeError/KeyError on inconsistent tensors
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidModel(f"ONNX file '{path}': {what} {t.name!r}: its data does not match dims {dims} ({msg}); rule: "
                           "the stored values fill the declared shape") from None
    if arr.dtype.kind in "fc" and arr.size and not np.all(np.isfinite(arr)):
        raise InvalidModel(f"ONNX file '{path}': {what} {t.name!r} contains NaN or infinite values; rule: finite weights")
    return arr


def attribute_value(a, node_name: str, path: str = ""):
    from onnx import helper

    where = f"ONNX file '{path}': " if path else "ONNX: "
    why = "type UNDEFINED" if a.type == 0 else ""
    if not why:
        try:
            value = helper.get_attribute_value(a)
        except Exception as exc:  # TypeError/ValueError for unknown attribute types
            why = f"{type(exc).__name__}, attribute type {a.type}"
        else:
            if value is not None:
                return value
            why = f"no value for attribute type {a.type}"
    raise InvalidModel(f"{where}node {node_name!r}: attribute {a.name!r} has no readable value ({why}); rule: a "
                       "typed ONNX attribute")
