"""Quantized LIF graphs on stock Lava processes (see the package docstring, "Quantized LIF graphs").

numpy, Lava (imported inside the functions) and :mod:`snncompile.neurons.lif` only: the
standalone export carries this module as it is.
"""

import numpy as np

from ...neurons.lif import readout_scores
from .runner import recording_files, run_and_read


def lif_schedule(plan: dict, t_in: int, t_total=None, gap: int = 0) -> dict:
    """The sample period of a LIF plan for rasters of ``t_in`` steps (module docstring, "Timing"):
    T steps compared with fxsim, then G gap steps; where the input, bias and quench sources spike;
    the quench exponent of each population with outgoing connections."""
    meta, conns = plan["meta"], plan["conns"]
    T = int(t_in) + int(meta["depth"]) if t_total is None else int(t_total)
    if T < 1 or int(t_in) < 1 or int(gap) < 0:
        raise ValueError(f"need t_in >= 1, t_total >= 1, gap >= 0; got {t_in}, {T}, {gap}")
    quench = bool(meta["quench"])
    G = max([c["delay"] for c in conns] + [1]) + (1 if quench else 0) + int(gap)
    d_in = [c["delay"] for c in conns if c["src"] == "input"]
    d_bias = [c["delay"] for c in conns if c["src"] == "bias"]
    qexp = {}
    if quench:  # per-step inhibition 2**(14 + e) over at most min(G - 1, 4096 / (du + 1)) steps <= 2**22
        for p in plan["pops"]:
            if p["out_delay"]:
                m = min(G - 1, 4096.0 / (int(p["du"]) + 1))
                qexp[p["name"]] = int(min(7, max(-8, np.floor(8 - np.log2(m)))))
    return {"t_in": int(t_in), "t_total": T, "gap": G, "period": T + G, "quench": quench, "quench_exp": qexp,
            "input_last": max(0, min(int(t_in), T - min(d_in))) if d_in else 0,
            "bias_last": max(0, T - min(d_bias)) if d_bias else 0}


def lif_input_data(raster: np.ndarray, sched: dict) -> np.ndarray:
    """RingBuffer data (inputs, B * P) int32: column kP + t - 1 = raster column t - 1 of sample k
    (sent at local step t), for t <= input_last; zero elsewhere."""
    B, _, n_in = raster.shape
    P, L = sched["period"], sched["input_last"]
    data = np.zeros((B, P, n_in), np.int32)
    data[:, :L] = raster[:, :L]
    return np.ascontiguousarray(data.reshape(B * P, n_in).T)


def lif_clock(first: int, last: int, period: int) -> np.ndarray:
    """RingBuffer data (1, period): one spike at every local step first..last of every period."""
    data = np.zeros((1, period), np.int32)
    if last >= first:
        data[0, first - 1:last] = 1
    return data


def lif_recording_model(periodic_reset: bool = True):
    """The stock ``PyLifResetModelBitAcc`` (or, ``periodic_reset=False``, LIF's ``PyLifModelBitAcc``),
    subclassed only to write v and the spikes of every step into ``<record>.v.npy`` /
    ``<record>.s.npy`` (proc_params ``record``, ``record_steps``)."""
    from lava.proc.lif.models import PyLifModelBitAcc, PyLifResetModelBitAcc

    class PyLifModelRecorded(PyLifResetModelBitAcc if periodic_reset else PyLifModelBitAcc):
        def __init__(self, proc_params):
            super().__init__(proc_params)
            self._record = proc_params.get("record")
            self._record_steps = int(proc_params.get("record_steps") or 0)
            self._files = None
            self._spikes = None

        def spiking_activation(self):
            s = super().spiking_activation()
            self._spikes = s
            return s

        def run_spk(self):
            super().run_spk()  # the stock step, unchanged
            row = self.time_step - 1
            if not self._record or row >= self._record_steps:
                return
            if self._files is None:
                self._files = (np.load(self._record + ".v.npy", mmap_mode="r+"),
                               np.load(self._record + ".s.npy", mmap_mode="r+"))
            fv, fs = self._files
            fv[row] = self.v
            fs[row] = self._spikes
            if row == self._record_steps - 1:  # the last step of the run: hand the files over
                fv.flush()
                fs.flush()
                self._files = None

    return PyLifModelRecorded


def run_lif_chunk(plan: dict, sched: dict, raster: np.ndarray, workdir: str, recorder: str = "file",
                  periodic_reset: bool = True) -> dict:
    """Build the stock-Lava network of ``plan`` and run the B samples of ``raster`` (B, T_in, inputs)
    back to back, P = sched["period"] steps each.  Neurons are ``LIFReset`` (reset at local step 1 of
    every sample), or with ``periodic_reset=False`` plain ``LIF`` (then B must be 1).  Returns
    ``{"v": [(B, P, n) int32 per population], "s": [(B, P, n) bool], "seconds": {"build", "run",
    "read"}}`` (populations in plan order)."""
    import time

    import scipy.sparse as sp
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF, LIFReset
    from lava.proc.sparse.process import Sparse
    from lava.utils.weightutils import SignMode

    if recorder not in ("file", "monitor"):
        raise ValueError(f"recorder must be 'file' or 'monitor', got {recorder!r}")
    meta = plan["meta"]
    P, T = int(sched["period"]), int(sched["t_total"])
    B = len(raster)
    total = B * P
    if not periodic_reset and B != 1:
        raise ValueError("plain LIF neurons do not reset: one sample per build")
    mode = {"mixed": SignMode.MIXED, "exc": SignMode.EXCITATORY, "inh": SignMode.INHIBITORY}[meta["sign_mode"]]
    bits = int(meta["weight_bits"])
    t0 = time.perf_counter()
    sources = {"input": RingBuffer(data=lif_input_data(raster, sched))}
    if any(c["src"] == "bias" for c in plan["conns"]):
        sources["bias"] = RingBuffer(data=lif_clock(1, sched["bias_last"], P))
    lifs, files, monitors = {}, [], []
    for i, p in enumerate(plan["pops"]):
        n = int(p["neurons"])
        kw = {"shape": (n,), "du": int(p["du"]), "dv": int(p["dv"]), "vth": int(p["vth"]), "name": str(p["name"]),
              "bias_mant": np.asarray(p["bias_mant"], np.int64).reshape(n),
              "bias_exp": np.asarray(p["bias_exp"], np.int64).reshape(n)}
        lif = LIFReset(reset_interval=P, reset_offset=1, **kw) if periodic_reset else LIF(**kw)
        if recorder == "file":
            rec = recording_files(workdir, f"lif{i}", total, n)
            lif.proc_params["record"] = rec
            lif.proc_params["record_steps"] = total
            files.append(rec)
        else:
            from lava.proc.monitor.process import Monitor

            mv, ms = Monitor(), Monitor()
            mv.probe(lif.v, total)
            ms.probe(lif.s_out, total)
            monitors.append((mv, ms))
        lifs[p["name"]] = lif
    for c in plan["conns"]:
        w = np.asarray(c["weights"], np.int32)
        kw = {"weight_exp": int(c["weight_exp"]), "num_weight_bits": bits, "sign_mode": mode, "name": str(c["name"])}
        if int(c["delay"]) > 1:
            conn = DelayDense(weights=w, delays=np.full(w.shape, int(c["delay"]) - 1, dtype=int), **kw)
        elif c["kind"] == "sparse":
            conn = Sparse(weights=sp.csr_matrix(w), **kw)
        else:
            conn = Dense(weights=w, **kw)
        src = sources[c["src"]] if c["src"] in sources else lifs[c["src"]]
        src.s_out.connect(conn.s_in)
        conn.a_out.connect(lifs[c["dst"]].a_in)
    if sched["quench"] and sched["quench_exp"]:
        gate = RingBuffer(data=lif_clock(T + 1, P - 1, P))
        for p in plan["pops"]:
            if p["name"] in sched["quench_exp"]:
                conn = Dense(weights=np.full((int(p["neurons"]), 1), -256, np.int32),
                             weight_exp=int(sched["quench_exp"][p["name"]]), num_weight_bits=bits,
                             sign_mode=SignMode.MIXED, name=f"quench_{p['name']}")
                gate.s_out.connect(conn.s_in)
                conn.a_out.connect(lifs[p["name"]].a_in)
    if recorder == "file":
        model = lif_recording_model(periodic_reset)
        # keyed by instance: Lava then skips its ProcessModel discovery for these processes
        cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={lif: model for lif in lifs.values()})
    else:
        cfg = Loihi2SimCfg(select_tag="fixed_pt")
    vs, ss, times = run_and_read(next(iter(lifs.values())), cfg, total, t0, recorder, list(lifs.values()), monitors,
                                 files)
    return {"v": [v.reshape(B, P, -1) for v in vs], "s": [s.reshape(B, P, -1) for s in ss], "seconds": times}


def lif_dirty_starts(plan: dict, sched: dict, spikes: list) -> np.ndarray:
    """(B,) bool: sample k started with something in flight from sample k - 1 (a population with
    outgoing connections of delay up to D spiked in the last D steps of sample k - 1's period).
    ``spikes``: (B, P, n) per population, in plan order.  Sample 0 of a build is always clean."""
    P = int(sched["period"])
    dirty = np.zeros(len(spikes[0]) if spikes else 0, bool)
    for p, s in zip(plan["pops"], spikes):
        D = int(p["out_delay"])
        if D:
            dirty[1:] |= s[:-1, P - D:, :].any(axis=(1, 2))
    return dirty


def run_lif_network(plan: dict, sched: dict, raster: np.ndarray, workdir: str, batch: int = 0,
                    recorder: str = "file", progress=None, reset: str = "periodic") -> dict:
    """Run every sample of ``raster`` (N, T_in, inputs) exactly as from fresh state.

    ``reset="periodic"``: LIFReset neurons, samples back to back in builds of ``batch`` samples
    (default: about 20,000 steps), then every sample whose start was not clean
    (:func:`lif_dirty_starts`) again in a build of its own.  ``reset="rebuild"``: plain stock LIF
    neurons, one build per sample (slow, no reset involved).  Returns ``{"v": {name: (N, T, n)
    int32}, "s": {name: (N, T, n) bool}, "seconds", "builds", "rerun" (sample indices), "batch"}``."""
    raster = np.asarray(raster)
    raster = raster.reshape(raster.shape[0], raster.shape[1], -1)
    N, n_in = raster.shape[0], raster.shape[2]
    P, T = int(sched["period"]), int(sched["t_total"])
    if reset not in ("periodic", "rebuild"):
        raise ValueError(f"reset must be 'periodic' or 'rebuild', got {reset!r}")
    periodic = reset == "periodic"
    if not periodic:
        batch = 1
    elif not batch:
        batch = max(1, min(20000 // P, 20_000_000 // max(1, n_in * P)))
    names = [p["name"] for p in plan["pops"]]
    v = {p["name"]: np.zeros((N, T, int(p["neurons"])), np.int32) for p in plan["pops"]}
    s = {p["name"]: np.zeros((N, T, int(p["neurons"])), bool) for p in plan["pops"]}
    secs = {"build": 0.0, "run": 0.0, "read": 0.0}
    builds, rerun = 0, []

    def put(start, out):
        for name, vv, ss in zip(names, out["v"], out["s"]):
            v[name][start:start + len(vv)] = vv[:, :T]
            s[name][start:start + len(ss)] = ss[:, :T]
        for key in secs:
            secs[key] += out["seconds"][key]

    for i in range(0, N, batch):
        out = run_lif_chunk(plan, sched, raster[i:i + batch], workdir, recorder, periodic)
        builds += 1
        put(i, out)
        rerun += [i + int(j) for j in np.flatnonzero(lif_dirty_starts(plan, sched, out["s"]))]
        if progress is not None:
            progress(len(out["v"][0]))
    for j in rerun:
        put(j, run_lif_chunk(plan, sched, raster[j:j + 1], workdir, recorder))
        builds += 1
    return {"v": v, "s": s, "seconds": secs, "builds": builds, "rerun": rerun, "batch": batch}


def lif_readout_scores(plan, out, T):
    """Readout of a LIF run (:func:`snncompile.neurons.lif.readout_scores`): (integer raw, scores)."""
    ro = next(p for p in plan["pops"] if p["readout"])
    return readout_scores(ro["spiking"], out["s"][ro["name"]].sum(axis=1), out["v"][ro["name"]].astype(np.int64).sum(axis=1),
                          ro["v_lsb"], T)
