"""The Lava target (see the package docstring)."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
from tqdm.auto import tqdm

from ...errors import InvalidModel
from ...spikes import first_spike_steps
from ..base import LayerRun, Run, RunRequest, Target, decide, get_target
from .compare import first_mismatch
from .compat import INSTALL_HINT, require_lava
from .params import load_plan, save_plan
from .plan import lif_plan, ttfs_plan


class LavaTarget(Target):
    """Quantized TTFS and LIF graphs on Lava's bit-accurate models, compared with fxsim at every step.

    Options (``request.options``): ``batch`` (samples per Lava build; default about 20,000 steps),
    ``recorder`` ("file" | "monitor"), ``keep_traces`` (return every population's v at every
    step), ``progress``; TTFS: ``period_margin`` (silent steps appended to every sample); LIF:
    ``gap``, ``quench`` ("auto" | True | False), ``t_total``, ``reset`` ("periodic" | "rebuild").
    The network is built from the plan as read back from ``params.npz``, the file the standalone
    export runs.  ``run_seconds`` is Lava's own time (build, run, read), without the comparison.
    """

    name = "lava"
    families = ("ttfs", "lif")
    kinds = ("quantized",)
    checks_fxsim = True
    install = INSTALL_HINT

    def run(self, request: RunRequest) -> Run:
        self.require(request.family, "quantized")
        opts = request.options
        inputs = request.evaluated
        recorder = opts.get("recorder", "file")
        if recorder not in ("file", "monitor"):
            raise InvalidModel(f"recorder must be 'file' or 'monitor', got {recorder!r}")
        if inputs.spikes is None or len(inputs) == 0:
            raise InvalidModel("lava: no encoded input samples")
        batch = int(opts.get("batch") or opts.get("lava_batch") or 0)
        ttfs = request.family == "ttfs"
        if ttfs:
            plan = ttfs_plan(request.graph, int(opts.get("period_margin") or 0))
        else:
            quench = opts.get("quench", "auto")
            if quench not in ("auto", True, False):
                raise InvalidModel(f"quench must be 'auto', True or False, got {quench!r}")
            plan = lif_plan(request.graph, quench)
        require_lava()
        t_start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="snncompile-lava-") as work:
            path = os.path.join(work, "params.npz")
            save_plan(plan, path)
            plan = load_plan(path)  # the loader of the standalone export: one code path
            if ttfs:
                out, info = self._run_ttfs(plan, inputs.spikes, work, batch, recorder, opts.get("progress"))
            else:
                out, info = self._run_lif(plan, inputs.spikes, work, batch, recorder, opts)
        seconds = time.perf_counter() - t_start
        names = [p["name"] for p in plan["pops"]]
        T = info["t_total"]
        t_cmp = time.perf_counter()
        fx = get_target("fxsim").run(RunRequest(request.graph, request.family, request.profile, inputs,
                                                options={"record": True, "t_total": T}))
        mismatch = first_mismatch(names, out["v"], out["s"], fx.traces, fx.spikes, target=self.name)
        info.update(seconds=seconds, seconds_per_sample=seconds / len(inputs), lava_seconds=out["seconds"],
                    compare_seconds=time.perf_counter() - t_cmp, bit_exact_with_fxsim=mismatch is None,
                    first_mismatch=mismatch, recorder=recorder, time_unit="step")
        layers = []
        spiking = [p for p in plan["pops"] if (p["role"] != "readout" if ttfs else p["spiking"])]
        for p in spiking:
            s = out["s"][p["name"]]
            role = p["role"] if ttfs else ("output" if p["readout"] else "hidden")
            layers.append(LayerRun(p["name"], role, int(p["neurons"]), s.sum(axis=(1, 2)).astype(np.int64),
                                   first_spike_steps(s)))
        if ttfs:
            ro = plan["pops"][-1]
            raw = out["v"][ro["name"]][:, T - 1].astype(np.int64)
            scores = raw * ro["v_lsb"]
            in_spikes = (np.asarray(inputs.spikes).reshape(len(inputs), -1) > 0).sum(1)
        else:
            from .lif_runtime import lif_readout_scores

            raw, scores = lif_readout_scores(plan, out, T)
            in_spikes = np.asarray(inputs.spikes).reshape(len(inputs), -1).sum(axis=1).astype(np.int64)
        keep = opts.get("keep_traces", True)
        return Run(self.name, scores, decide(scores), layers, in_spikes, info=info, raw_logits=raw,
                   traces={k: v.astype(np.int64) for k, v in out["v"].items()} if keep else None,
                   spikes=out["s"] if keep else None, run_seconds=seconds)

    @staticmethod
    def _run_ttfs(plan, counts, work, batch, recorder, progress):
        from .standalone import run_ttfs

        meta = plan["meta"]
        counts = np.asarray(counts).reshape(len(counts), -1)
        bar = tqdm(total=len(counts), desc="lava", disable=not progress, leave=False, unit="sample")
        out = run_ttfs(plan, counts, work, batch, recorder)
        bar.update(len(counts))
        bar.close()
        info = {"steps": int(meta["steps"]), "t_total": int(meta["t_total"]), "sample_period": int(meta["period"]),
                "builds": out["builds"], "batch": out["batch"], "readout": plan["pops"][-1]["name"],
                "weight_parts": {p["name"]: len(p["parts"]) for p in plan["pops"]}}
        return out, info

    @staticmethod
    def _run_lif(plan, raster, work, batch, recorder, opts):
        from .lif_runtime import lif_schedule, run_lif_network

        gap, reset, t_total = int(opts.get("gap") or 0), opts.get("reset", "periodic"), opts.get("t_total")
        if gap < 0:
            raise InvalidModel(f"gap must be >= 0, got {gap}")
        if reset not in ("periodic", "rebuild"):
            raise InvalidModel(f"reset must be 'periodic' or 'rebuild', got {reset!r}")
        if t_total is not None and int(t_total) < 1:
            raise InvalidModel(f"t_total must be >= 1, got {t_total}")
        meta = plan["meta"]
        raster = np.asarray(raster)
        if raster.ndim < 2 or raster.shape[1] == 0 or int(np.prod(raster.shape[2:])) != meta["n_in"]:
            raise InvalidModel(f"lava: spikes must have shape (N, T_in, {', '.join(map(str, meta['input_shape']))}) "
                               f"with T_in >= 1, got {raster.shape}")
        if not np.isin(raster, (0, 1)).all():
            raise InvalidModel("lava: spikes must be 0 or 1 (Dense reads binary spikes)")
        N, T_in = raster.shape[0], raster.shape[1]
        sched = lif_schedule(plan, T_in, t_total, gap)
        bar = tqdm(total=N, desc="lava", disable=not opts.get("progress"), leave=False, unit="sample")
        out = run_lif_network(plan, sched, raster.reshape(N, T_in, -1), work, batch=batch, recorder=recorder,
                              progress=bar.update, reset=reset)
        bar.close()
        info = {"t_total": sched["t_total"], "t_in": T_in, "sample_period": sched["period"], "gap": sched["gap"],
                "quench": sched["quench"], "builds": out["builds"], "batch": out["batch"],
                "rerun_samples": len(out["rerun"]), "reset": reset,
                "readout": next(p["name"] for p in plan["pops"] if p["readout"]),
                "connections": {c["name"]: ("DelayDense" if c["delay"] > 1 else c["kind"].capitalize())
                                for c in plan["conns"]}}
        return out, info
