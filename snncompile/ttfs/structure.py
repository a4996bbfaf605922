"""Split a canonical ReLU network into TTFS layers.

A TTFS layer is the chain of linear operations between two nonlinearities, followed by
a ReLU (a spiking layer, one spike at most per neuron) or by nothing (the readout,
which never spikes).  Max-pools after a ReLU become "earliest spike wins" layers.

    [Flatten|AvgPool2d]* (Linear|Conv2d [BiasMap]) [Flatten|AvgPool2d|Linear|Conv2d]*  ReLU  [MaxPool2d]*

(``BiasMap``: the per-position border bias of a BatchNorm folded into a padded conv, see
``frontends/canonical.py``; it becomes part of the layer's per-neuron bias.)

Linear operations compose, so average pools and flattens fold into the next affine
layer's linear map; ``Conv2d -> MaxPool2d -> ReLU`` equals ``Conv2d -> ReLU -> MaxPool2d``
(ReLU is monotone) and is accepted in either order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn as nn

from ..errors import InvalidModel
from ..frontends.canonical import BiasMap

LINEAR_TYPES = (nn.Linear, nn.Conv2d, nn.Flatten, nn.AvgPool2d, BiasMap)
AFFINE_TYPES = (nn.Linear, nn.Conv2d)


@dataclass
class AnnLayer:
    """One TTFS layer of a ReLU network.

    ``ops``/``names``: the linear modules (in order) mapping the previous layer's
    activations to this layer's pre-activations; ``relu``: hidden (True) or readout;
    ``pools``: max-pools applied to this layer's activations.
    """

    ops: list = field(default_factory=list)
    names: list = field(default_factory=list)
    relu: bool = False
    pools: list = field(default_factory=list)
    pool_names: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return next(n for op, n in zip(self.ops, self.names) if isinstance(op, AFFINE_TYPES))


def split_layers(net: nn.Sequential, layer_names: list[str]) -> list[AnnLayer]:
    """The TTFS layers of a canonical Sequential (see module docstring)."""
    mods = list(net)
    names = list(layer_names) if layer_names else [str(i) for i in range(len(mods))]
    layers: list[AnnLayer] = []
    cur = AnnLayer()
    i = 0
    while i < len(mods):
        m, n = mods[i], names[i]
        if isinstance(m, LINEAR_TYPES):
            cur.ops.append(m)
            cur.names.append(n)
        elif isinstance(m, nn.ReLU):
            _require_affine(cur, n)
            cur.relu = True
            layers.append(cur)
            cur = AnnLayer()
        elif isinstance(m, nn.MaxPool2d):
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            if cur.ops and isinstance(nxt, nn.ReLU):  # conv -> maxpool -> relu == conv -> relu -> maxpool
                _require_affine(cur, names[i + 1])
                cur.relu = True
                cur.pools.append(m)
                cur.pool_names.append(n)
                layers.append(cur)
                cur = AnnLayer()
                i += 1
            elif not cur.ops and layers and layers[-1].relu:
                layers[-1].pools.append(m)
                layers[-1].pool_names.append(n)
            else:
                raise InvalidModel(
                    f"layer {n!r}: MaxPool2d must follow a ReLU (or sit between a conv and its ReLU); "
                    "a max-pool on the input or on the logits has no TTFS equivalent here"
                )
        else:
            raise InvalidModel(f"layer {n!r}: {type(m).__name__} is not part of the canonical form")
        i += 1
    if not cur.ops:
        raise InvalidModel("the network must end with a Linear/Conv2d readout layer (no ReLU after it)")
    _require_affine(cur, cur.names[-1])
    layers.append(cur)
    return layers


def _require_affine(layer: AnnLayer, at: str) -> None:
    if not any(isinstance(op, AFFINE_TYPES) for op in layer.ops):
        raise InvalidModel(f"layer {at!r}: a ReLU must be preceded by a Linear or Conv2d layer")
