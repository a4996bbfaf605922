"""Frontends: bring a trained ReLU network (``nn.Module`` or ``.onnx``) into canonical form.

``load_model(source, input_shape=None) -> AnnModel`` dispatches on the source; the canonical
form and its rules are described in :mod:`snncompile.frontends.canonical`.
"""

import os

from torch import nn

from ..errors import InvalidModel
from .canonical import AnnModel, check_canonical, shape_in


def load_model(source, input_shape=None) -> AnnModel:
    """Load a ReLU network into canonical form.

    ``source``: a path to a ``.onnx`` file (ONNX frontend), an ``nn.Module`` (torch frontend;
    ``input_shape`` without the batch dim is then required), or an :class:`AnnModel` (checked
    and returned).  For ONNX, a given ``input_shape`` must match the file's input.
    """
    if isinstance(source, AnnModel):
        check_canonical(source)
        return source
    if isinstance(source, nn.Module):
        if input_shape is None:
            raise InvalidModel(f"an nn.Module ({type(source).__name__}) needs input_shape "
                               "(per sample, without the batch dim, e.g. (784,) or (1, 28, 28))")
        from .torch import from_torch

        return from_torch(source, input_shape)
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidModel(f"cannot load a model from a {type(source).__name__}; "
                           "give a .onnx path or an nn.Module")
    path = os.fspath(source)
    if not path.lower().endswith(".onnx"):
        raise InvalidModel(f"model file '{path}': unknown format (supported: .onnx files, or an "
                           "nn.Module from Python)")
    if not os.path.isfile(path):
        raise InvalidModel(f"model file '{path}' not found")
    from .onnx import from_onnx

    model = from_onnx(path)
    if input_shape is not None and shape_in(input_shape) != model.input_shape:
        raise InvalidModel(f"model file '{path}' takes input {model.input_shape}, "
                           f"not the given input_shape {shape_in(input_shape)}")
    return model


__all__ = ["AnnModel", "load_model"]
