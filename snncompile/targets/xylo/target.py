"""The xylosim target: a graph quantized for Xylo runs on rockpool's XyloSim (xylosim's C++ core),
and every spike, synaptic current and membrane potential of every step is compared with fxsim's
Xylo arithmetic on the same samples."""

from __future__ import annotations

import time

from ...lif.xylo import to_run, xylo_raster
from ...quantize.lif_xylo import xylo_spec
from ..base import LayerRun, Run, RunRequest, Target, decide
from .compat import INSTALL_HINT


class XyloSimTarget(Target):
    name = "xylosim"
    families = ("lif",)
    kinds = ("quantized",)
    checks_fxsim = True
    install = INSTALL_HINT

    def run(self, request: RunRequest) -> Run:
        from ...errors import InvalidModel
        from ...neurons.xylo import simulate
        from .sim import build, compare, run_xylosim

        if request.family != "lif":
            raise InvalidModel("target 'xylosim' runs LIF graphs quantized for a Xylo profile; Xylo has no TTFS "
                               "neuron (use --target lava for TTFS networks)")
        self.require(request.family, "quantized")
        spec = xylo_spec(request.graph)
        inputs = request.evaluated
        x = xylo_raster(request.graph, inputs.spikes, request.options.get("t_total"))
        sim = build(spec)
        t0 = time.perf_counter()
        theirs = run_xylosim(spec, x, sim)
        seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        mismatch = compare(spec, x, theirs, simulate(spec, x))
        run = to_run(self.name, request.graph, theirs, x, bool(request.options.get("keep_traces", True)), Run,
                     LayerRun, decide)
        run.info.update(bit_exact_with_fxsim=mismatch is None, first_mismatch=mismatch, seconds=seconds,
                        compare_seconds=time.perf_counter() - t1, compared="spikes, Isyn, Isyn2, Vmem (hidden); "
                        "spikes, Isyn, Vmem (output); every step of every sample")
        run.run_seconds = seconds
        return run
