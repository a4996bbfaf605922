"""The linear NIR nodes as batched torch functions (float64), shared by every target.

Shapes exclude the batch dimension, as in NIR: Flatten(start_dim=0) flattens a (C, H, W)
sample to (C*H*W,).  Integer-valued inputs and weights stay exact in float64 as long as
the sums stay below 2**53, which the fixed-point targets rely on.
"""

from __future__ import annotations

import nir
import numpy as np
import torch
import torch.nn.functional as F

from .errors import UnsupportedOperator

LINEAR_NODES = (nir.Affine, nir.Linear, nir.Conv2d, nir.Flatten, nir.AvgPool2d, nir.SumPool2d, nir.Scale)


def _pair(v):
    a = np.atleast_1d(np.asarray(v)).astype(int).tolist()
    return (a[0], a[0]) if len(a) == 1 else (a[0], a[1])


def _tensor(a, like: torch.Tensor) -> torch.Tensor:
    """A parameter array as a tensor of ``like``'s dtype; on the meta device (shapes only), no data."""
    if like.device.type == "meta":
        return torch.empty(np.shape(a), dtype=like.dtype, device="meta")
    return torch.as_tensor(np.asarray(a), dtype=like.dtype)


def apply_node(name: str, node, x: torch.Tensor, with_bias: bool = True) -> torch.Tensor:
    """Apply one linear NIR node to a batch ``x`` of shape (N, *in_shape) (on the meta device: shapes only)."""
    if isinstance(node, nir.Affine):
        y = x @ _tensor(node.weight, x).T
        if with_bias and node.bias is not None:
            y = y + _tensor(node.bias, x)
        return y
    if isinstance(node, nir.Linear):
        return x @ _tensor(node.weight, x).T
    if isinstance(node, nir.Scale):
        return x * _tensor(node.scale, x)
    if isinstance(node, nir.Conv2d):
        if isinstance(node.padding, str):
            raise UnsupportedOperator(f"Conv2d(padding={node.padding!r})", name, ["Conv2d with integer padding"])
        bias = _tensor(node.bias, x) if with_bias and node.bias is not None else None
        if bias is not None and bias.ndim == 0:
            bias = bias.expand(node.weight.shape[0])
        return F.conv2d(x, _tensor(node.weight, x), bias,
                        stride=_pair(node.stride), padding=_pair(node.padding),
                        dilation=_pair(node.dilation), groups=int(node.groups))
    if isinstance(node, nir.Flatten):
        start = int(node.start_dim)
        end = int(node.end_dim)
        nd = x.ndim - 1
        start = start + nd if start < 0 else start
        end = end + nd if end < 0 else end
        return torch.flatten(x, start + 1, end + 1)
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        k, s, p = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
        y = F.avg_pool2d(x, k, s, p, count_include_pad=True)
        return y * (k[0] * k[1]) if isinstance(node, nir.SumPool2d) else y
    raise UnsupportedOperator(type(node).__name__, name, [t.__name__ for t in LINEAR_NODES])


def apply_chain(ops, x: torch.Tensor, with_bias: bool = True) -> torch.Tensor:
    """Apply a list of ``(name, node)`` linear NIR nodes in order."""
    for name, node in ops:
        x = apply_node(name, node, x, with_bias=with_bias)
    return x


def chain_shape(ops, in_shape: tuple) -> tuple:
    """The per-sample output shape of a chain of linear nodes (matrices by their shape, the rest on torch's
    meta device: no arithmetic)."""
    shape = tuple(in_shape)
    for name, node in ops:
        if isinstance(node, (nir.Affine, nir.Linear)) and np.ndim(node.weight) == 2 and len(shape) == 1:
            shape = (int(np.shape(node.weight)[0]),)
        else:
            x = torch.empty((1, *shape), dtype=torch.float64, device="meta")
            shape = tuple(apply_node(name, node, x, with_bias=False).shape[1:])
    return shape


def composite_matrix(ops, in_shape: tuple, chunk: int = 1024):
    """The chain of linear nodes as a scipy CSR matrix (out_features x in_features).

    Built by pushing identity batches through :func:`apply_chain` (no bias), so it is the
    exact map whatever the node types; zero entries are dropped.
    """
    import scipy.sparse as sp

    n_in = int(np.prod(in_shape))
    blocks = []
    with torch.no_grad():
        for start in range(0, n_in, chunk):
            stop = min(n_in, start + chunk)
            eye = torch.zeros((stop - start, n_in), dtype=torch.float64)
            eye[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
            cols = apply_chain(ops, eye.reshape((stop - start, *in_shape)), with_bias=False)
            blocks.append(sp.csr_matrix(cols.reshape(stop - start, -1).numpy()))
    return sp.vstack(blocks).T.tocsr()
