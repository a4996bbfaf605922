"""Frontends: bring a trained ReLU network (``nn.Module`` or ``.onnx``) into canonical form.

``load_model(source, input_shape=None) -> AnnModel`` dispatches on the source; the canonical
form and its rules are described in :mod:`snncompile.frontends.canonical`.
"""

from .canonical import AnnModel, load_model

__all__ = ["AnnModel", "load_model"]
