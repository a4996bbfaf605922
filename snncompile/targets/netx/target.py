"""The netx target: our quantized LIF graph written as a netx ``.net``, loaded by lava-dl's own
loader and run on Lava's bit-accurate models, compared with fxsim at every step.

Timing (checked by the tests): netx chains ``Dense`` synapses and ``LIF`` neurons; the input
``RingBuffer`` sends raster column t - 1 at step t and every ``Dense`` delivers one step later,
so layer i's neurons see the input of step t at step t + 1 + i -- one step of delay per
connection, exactly fxsim's rule for delay-1 connections (``lif/fixed.py``).  Both run
``T = T_in + depth`` steps per sample unless ``t_total`` is given, and both start every sample
from zero state.  netx's own reset (``reset_interval``: ``LIFReset``, staggered by one step per
layer, hdf5.py ``_create``) does not match fxsim's per-sample origin, so :func:`run_netx` runs the
samples on one build and, with the runtime paused between samples, sets every layer's ``u``,
``v`` and its Dense's pending activation ``a_buff`` to 0 (``reset="set"``, checked against
``reset="rebuild"``, a fresh network per sample, in the tests).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ...errors import InvalidModel
from ...ir import get_meta
from ...neurons.lif import readout_scores
from ...spikes import first_spike_steps
from ..base import LayerRun, Run, RunRequest, Target, decide, get_target
from ..lava.compare import first_mismatch
from .compat import INSTALL_HINT, require_netx
from .write import netx_layers, write_netx


def run_netx(net_config: str, raster: np.ndarray, T: int, reset: str = "set", batch: int = 0,
             progress=None) -> tuple[list, list, int]:
    """Load ``net_config`` with lava-dl's ``netx.hdf5.Network`` and run every sample of ``raster``
    (N, T_in, n_in) 0/1 for ``T`` steps each with ``Loihi2SimCfg(select_tag="fixed_pt")``.

    ``reset="set"``: one build per ``batch`` samples (0: all); between samples the runtime pauses
    and every layer's ``u``, ``v`` and its Dense's pending activation ``a_buff`` are set to 0, so
    each sample starts from zero state as in fxsim.  ``reset="rebuild"``: a fresh network per
    sample.  Returns per layer (N, T, n) integer v and bool spikes, and the number of builds.
    """
    if reset not in ("set", "rebuild"):
        raise InvalidModel(f"reset must be 'set' or 'rebuild', got {reset!r}")
    N = len(raster)
    step = 1 if reset == "rebuild" else (batch or N)
    vs, ss, builds = [], [], 0
    for k0 in range(0, N, step):
        v, s = _run_chunk(net_config, raster[k0:k0 + step], T, progress)
        vs.append(v)
        ss.append(s)
        builds += 1
    n_layers = len(vs[0])
    return ([np.concatenate([v[i] for v in vs]) for i in range(n_layers)],
            [np.concatenate([s[i] for s in ss]) for i in range(n_layers)], builds)


def _run_chunk(net_config, raster, T, progress):
    netx = require_netx()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    B, T_in = raster.shape[:2]
    net = netx.hdf5.Network(net_config=str(net_config))
    data = np.zeros((raster.shape[2], B * T), dtype=np.int32)
    for k in range(B):  # RingBuffer sends column t - 1 at step t
        data[:, k * T:k * T + min(T_in, T)] = raster[k, :T].T
    src = RingBuffer(data=data)
    src.s_out.connect(net.inp)
    mons = []
    for blk in net.layers:
        mv, ms = Monitor(), Monitor()
        mv.probe(blk.neuron.v, B * T)
        ms.probe(blk.neuron.s_out, B * T)
        mons.append((blk.neuron, mv, ms))
    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    try:
        for k in range(B):
            if k:  # paused between samples: zero state, nothing in flight
                for blk in net.layers:
                    for var in (blk.neuron.u, blk.neuron.v, blk.synapse.a_buff):
                        var.set(np.zeros(var.shape, dtype=np.int32))
            net.run(condition=RunSteps(num_steps=T), run_cfg=cfg)
            if progress is not None:
                progress(1)
        vs = [np.asarray(mv.get_data()[n.name]["v"], dtype=np.float64).reshape(B, T, -1) for n, mv, _ in mons]
        ss = [np.asarray(ms.get_data()[n.name]["s_out"], dtype=np.float64).reshape(B, T, -1) for n, _, ms in mons]
    finally:
        net.stop()
    return [np.rint(v).astype(np.int64) for v in vs], [s > 0 for s in ss]


class NetxTarget(Target):
    """Quantized LIF graphs through lava-dl netx (Loihi 2 deployment format), compared with fxsim.

    Options: ``t_total`` (steps per sample; default T_in + depth), ``reset`` ("set" | "rebuild",
    :func:`run_netx`), ``batch`` (samples per build; 0: all), ``keep_traces`` (default True), ``progress``.  ``run_seconds``: writing the file plus netx's load and run of every sample,
    without the fxsim comparison.
    """

    name = "netx"
    families = ("lif",)
    kinds = ("quantized",)
    checks_fxsim = True
    install = INSTALL_HINT

    def require(self, family: str, kind: str) -> None:
        if family == "ttfs":
            raise InvalidModel("target 'netx' does not run TTFS graphs: netx describes stock CUBA LIF layers and "
                               "has no programmable neuron for the TTFS neuron; use --target lava (and --emit lava)")
        super().require(family, kind)

    def run(self, request: RunRequest) -> Run:
        self.require(request.family, "quantized")
        graph, opts, inputs = request.graph, request.options, request.evaluated
        if inputs.spikes is None or len(inputs) == 0:
            raise InvalidModel("netx: no encoded input samples")
        layers, meta = netx_layers(graph)  # InvalidModel for what netx cannot express, before Lava loads
        raster = np.asarray(inputs.spikes)
        n_in = int(np.prod(meta["input_shape"]))
        if raster.ndim < 2 or raster.shape[1] == 0 or int(np.prod(raster.shape[2:])) != n_in:
            raise InvalidModel(f"netx: spikes must have shape (N, T_in, {', '.join(map(str, meta['input_shape']))}) "
                               f"with T_in >= 1, got {raster.shape}")
        if not np.isin(raster, (0, 1)).all():
            raise InvalidModel("netx: spikes must be 0 or 1 (netx's input layer reads binary spikes)")
        N, T_in = raster.shape[:2]
        flat = raster.reshape(N, T_in, n_in).astype(np.int32)
        t_total = opts.get("t_total")
        T = int(t_total) if t_total is not None else T_in + int(get_meta(graph)["depth"])
        if T < 1:
            raise InvalidModel(f"t_total must be >= 1, got {T}")
        names = [la["name"] for la in layers]
        require_netx()
        t0 = time.perf_counter()
        reset = opts.get("reset", "set")
        bar = tqdm(total=N, desc="netx", disable=not opts.get("progress"), leave=False, unit="sample")
        with tempfile.TemporaryDirectory(prefix="snncompile-netx-") as work:
            path = write_netx(graph, Path(work) / "model.net")
            vs, ss, builds = run_netx(str(path), flat, T, reset, int(opts.get("batch") or 0), bar.update)
        bar.close()
        v, s = dict(zip(names, vs)), dict(zip(names, ss))
        seconds = time.perf_counter() - t0
        t_cmp = time.perf_counter()
        fx = get_target("fxsim").run(RunRequest(graph, request.family, request.profile, inputs,
                                                options={"record": True, "t_total": T}))
        mismatch = first_mismatch(names, v, s, fx.traces, fx.spikes, target=self.name)
        info = {"t_total": T, "t_in": T_in, "builds": builds, "reset": reset, "layers": len(layers), "time_unit": "step",
                "seconds": seconds, "seconds_per_sample": seconds / N, "compare_seconds": time.perf_counter() - t_cmp,
                "bit_exact_with_fxsim": mismatch is None, "first_mismatch": mismatch,
                "readout": meta["readout"]}
        runs = [LayerRun(la["name"], "output" if la["name"] == meta["readout"] else "hidden", int(la["neurons"]),
                         s[la["name"]].sum(axis=(1, 2)).astype(np.int64), first_spike_steps(s[la["name"]]))
                for la in layers if la["spiking"]]
        ro = layers[-1]
        counts = s[ro["name"]].sum(axis=1).astype(np.int64)
        vsum = v[ro["name"]].sum(axis=1)
        raw, scores = readout_scores(ro["spiking"], counts, vsum, ro["v_lsb"], T)
        in_spikes = flat.reshape(N, -1).sum(axis=1).astype(np.int64)
        keep = opts.get("keep_traces", True)
        return Run(self.name, scores, decide(scores), runs, in_spikes, info=info, raw_logits=raw,
                   traces=v if keep else None, spikes=s if keep else None, run_seconds=seconds)
