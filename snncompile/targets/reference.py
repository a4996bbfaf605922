"""The float reference target: exact B1 TTFS spike times (snncompile.ttfs.reference)."""

from __future__ import annotations

import numpy as np

from ..ttfs.graph import parse_ttfs
from ..ttfs.reference import simulate
from .base import LayerRun, Run, decide


class ReferenceTarget:
    name = "reference"

    def run(self, graph, inputs: np.ndarray, profile=None, **options) -> Run:
        net = parse_ttfs(graph)
        if net.quantized:
            from ..errors import InvalidModel

            raise InvalidModel("the reference target runs the float graph (model.nir), not model.q.nir")
        res = simulate(net, inputs)
        layers = []
        for layer in net.spiking:
            t = res.times[layer.name]
            layers.append(LayerRun(layer.name, layer.role, layer.neurons, np.isfinite(t).sum(axis=1), t))
        return Run(self.name, res.logits, decide(res.logits), layers,
                   np.isfinite(res.input_times).sum(axis=1), info={"time_unit": "window"})
