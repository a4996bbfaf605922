"""The TTFS neuron as a Lava Process, its bit-accurate (``fixed_pt``) ProcessModel, and the
network builder.

The model runs :func:`snncompile.neurons.ttfs.integer_step` (the one integer program; equations
there) for one population, with t = the step inside the current sample (1..P, restarted every
period P) and a per-sample reset at t = 1 (u = 0, v = beta, fired = False).  ``a`` is what
arrives on ``a_in`` this step: the Dense/Sparse output of the previous step's spikes (one step of
delay per connection).  The readout is the same neuron with an empty fire window.

Recording (optional): with ``record`` = a path prefix and ``record_steps`` = the number of
steps of the run, the model writes its v (int32) and spikes (int8) after every step into the
numpy files ``<record>.v.npy`` and ``<record>.s.npy`` (shape (record_steps, neurons), created
by the caller).  That is one in-process write per step; Lava's Monitor would add one OS
process per probed Var and returns its data one element per message.

numpy, Lava and :mod:`snncompile.neurons.ttfs` only: the standalone export carries this module.
"""


import numpy as np

from ...neurons.ttfs import TtfsParams, integer_step
from .compat import require_lava
from .runner import recording_files, run_and_read

require_lava()  # Lava's own imports below need the Python 3.11 fix first

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402


class TtfsNeuron(AbstractProcess):
    """A population of fire-once TTFS neurons (integer program in the module docstring).

    Parameters
    ----------
    shape: (neurons,)
    bias: per-neuron integer potential at reset (beta)
    slope, threshold: integer ramp r and threshold theta
    t_in_end, fire_start, fire_end: step numbers within a sample (1-based)
    period: steps per sample P; the state resets at the first step of every period
    state_bits, act_shift: arithmetic of u and v (Loihi: 24, 6)
    u_threshold: None, or per neuron >= 0 for a min-pool neuron (fires on u > u_threshold), -1 otherwise
    record, record_steps: optional trace files (module docstring)
    """

    def __init__(self, *, shape, bias, slope: int, threshold: int, t_in_end: int, fire_start: int,
                 fire_end: int, period: int, state_bits: int = 24, act_shift: int = 6, u_threshold=None,
                 record=None, record_steps: int = 0, name=None) -> None:
        shape = tuple(int(s) for s in np.atleast_1d(shape))
        bias = np.broadcast_to(np.asarray(bias, dtype=np.int64), shape).copy()
        ut = np.full(shape, -1, np.int64) if u_threshold is None else np.asarray(u_threshold, np.int64).reshape(shape)
        super().__init__(shape=shape, bias=bias, slope=slope, threshold=threshold, t_in_end=t_in_end,
                         fire_start=fire_start, fire_end=fire_end, period=period, state_bits=state_bits,
                         act_shift=act_shift, record=record, record_steps=record_steps, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.u = Var(shape=shape, init=np.zeros(shape, np.int64))
        self.v = Var(shape=shape, init=bias.copy())
        self.fired = Var(shape=shape, init=np.zeros(shape, bool))
        self.t = Var(shape=(1,), init=0)  # step number within the current sample (0: not started)
        self.bias = Var(shape=shape, init=bias)
        self.slope = Var(shape=(1,), init=int(slope))
        self.threshold = Var(shape=(1,), init=int(threshold))
        self.t_in_end = Var(shape=(1,), init=int(t_in_end))
        self.fire_start = Var(shape=(1,), init=int(fire_start))
        self.fire_end = Var(shape=(1,), init=int(fire_end))
        self.period = Var(shape=(1,), init=int(period))
        self.state_bits = Var(shape=(1,), init=int(state_bits))
        self.act_shift = Var(shape=(1,), init=int(act_shift))
        self.u_threshold = Var(shape=shape, init=ut)


@implements(proc=TtfsNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyTtfsModelFixed(PyLoihiProcessModel):
    """Bit-accurate model: :func:`snncompile.neurons.ttfs.integer_step` on int64 arrays."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1)
    u: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    fired: np.ndarray = LavaPyType(np.ndarray, bool)
    t: int = LavaPyType(int, np.int32)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    u_threshold: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    slope: int = LavaPyType(int, np.int32, precision=24)
    threshold: int = LavaPyType(int, np.int32, precision=24)
    t_in_end: int = LavaPyType(int, np.int32)
    fire_start: int = LavaPyType(int, np.int32)
    fire_end: int = LavaPyType(int, np.int32)
    period: int = LavaPyType(int, np.int32)
    state_bits: int = LavaPyType(int, np.int32)
    act_shift: int = LavaPyType(int, np.int32)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._record = proc_params.get("record")
        self._record_steps = int(proc_params.get("record_steps") or 0)
        self._v_file = self._s_file = None

    def run_spk(self) -> None:
        a = np.asarray(self.a_in.recv()).astype(np.int64)
        t = int(self.t) % int(self.period) + 1
        self.t = t
        if t == 1:  # a new sample: every message of the previous one has been consumed (target.py)
            self.u = np.zeros(self.u.shape, np.int64)
            self.v = np.asarray(self.bias, dtype=np.int64).copy()
            self.fired = np.zeros(self.fired.shape, bool)
        p = TtfsParams("hidden", 0, 0, int(self.slope), int(self.threshold), 0, int(self.t_in_end),
                       int(self.fire_start), int(self.fire_end))
        ut = np.asarray(self.u_threshold, dtype=np.int64)
        u, v, fired, s = integer_step(np.asarray(self.u, dtype=np.int64), np.asarray(self.v, dtype=np.int64),
                                      np.asarray(self.fired, dtype=bool), a, t, p, int(self.state_bits),
                                      int(self.act_shift), u_threshold=ut if (ut >= 0).any() else None)
        self.u, self.v, self.fired = u, v, fired
        self.s_out.send(s)
        if self._record:
            self._write(v, s)

    def _write(self, v: np.ndarray, s: np.ndarray) -> None:
        row = self.time_step - 1
        if row >= self._record_steps:
            return
        if self._v_file is None:
            self._v_file = np.load(self._record + ".v.npy", mmap_mode="r+")
            self._s_file = np.load(self._record + ".s.npy", mmap_mode="r+")
        self._v_file[row] = v
        self._s_file[row] = s
        if row == self._record_steps - 1:  # the last step of the run: hand the files over
            self._v_file.flush()
            self._s_file.flush()
            self._v_file = self._s_file = None


# ---------------------------------------------------------------------------------------------
# Building and running a feed-forward TTFS network from stock Lava processes.


def input_raster(counts: np.ndarray, steps: int, period: int) -> np.ndarray:
    """RingBuffer data (inputs, N * period) int32 for spike counts (N, inputs) in 0..K.

    A count c > 0 spikes once, at step K - c + 1 of its sample; Lava's RingBuffer sends column
    (t - 1) mod buffer at global step t, and sample k occupies global steps k*P + 1 .. k*P + P,
    so the spike goes to column k*P + K - c.
    """
    counts = np.asarray(counts, dtype=np.int64).reshape(len(counts), -1)
    n, n_in = counts.shape
    data = np.zeros((n_in, n * period), np.int32)
    k, j = np.nonzero(counts > 0)
    data[j, k * period + steps - counts[k, j]] = 1
    return data


def run_populations(pops: list, counts: np.ndarray, steps: int, period: int, state_bits: int,
                    act_shift: int, weight_bits: int, workdir: str, recorder: str = "file") -> dict:
    """Build the network (RingBuffer -> [Dense|Sparse]+ -> TtfsNeuron -> ...) and run N * period steps.

    ``pops``: one dict per population, in order, with ``name``, ``neurons``, ``bias``, ``slope``,
    ``threshold``, ``t_in_end``, ``fire_start``, ``fire_end`` and ``parts``: a list of
    (kind "dense" | "sparse", integer weights (out x in, ndarray or scipy CSR), weight_exp); the
    parts of one population all read the previous population's spikes and their outputs add up
    on the neuron's a_in.  ``recorder``: "file" (the neuron model writes its own v and spikes)
    or "monitor" (Lava Monitors on v and s_out).  Returns ``{"v": [(N, P, n) int64 per
    population], "s": [(N, P, n) bool], "seconds": {"build": .., "run": .., "read": ..}}``.
    """
    import time

    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.sparse.process import Sparse
    from lava.utils.weightutils import SignMode

    if recorder not in ("file", "monitor"):
        raise ValueError(f"recorder must be 'file' or 'monitor', got {recorder!r}")
    n = len(counts)
    total = n * period
    t0 = time.perf_counter()
    src = RingBuffer(data=input_raster(counts, steps, period))
    prev = src.s_out
    neurons, files, monitors = [], [], []
    for i, pop in enumerate(pops):
        rec = None
        if recorder == "file":
            rec = recording_files(workdir, f"pop{i}", total, pop["neurons"])
            files.append(rec)
        neuron = TtfsNeuron(shape=(pop["neurons"],), bias=pop["bias"], slope=pop["slope"],
                            threshold=pop["threshold"], t_in_end=pop["t_in_end"], fire_start=pop["fire_start"],
                            fire_end=pop["fire_end"], period=period, state_bits=state_bits, act_shift=act_shift,
                            u_threshold=pop.get("u_threshold"), record=rec, record_steps=total, name=str(pop["name"]))
        for kind, w, exp in pop["parts"]:
            conn_cls = Dense if kind == "dense" else Sparse
            conn = conn_cls(weights=w, weight_exp=int(exp), num_weight_bits=int(weight_bits),
                            sign_mode=SignMode.MIXED, name=f"{pop['name']}_{kind}")
            prev.connect(conn.s_in)
            conn.a_out.connect(neuron.a_in)
        if recorder == "monitor":
            from lava.proc.monitor.process import Monitor

            mv, ms = Monitor(), Monitor()
            mv.probe(neuron.v, total)
            ms.probe(neuron.s_out, total)
            monitors.append((mv, ms))
        neurons.append(neuron)
        prev = neuron.s_out
    # keyed by instance: Lava then skips its ProcessModel discovery for these processes (which
    # would execute every module in this file's directory); by class it would still search
    cfg = Loihi2SimCfg(select_tag="fixed_pt",
                       exception_proc_model_map={neuron: PyTtfsModelFixed for neuron in neurons})
    vs, ss, times = run_and_read(neurons[-1], cfg, total, t0, recorder, neurons, monitors, files)
    shape = (n, period, -1)
    return {"v": [v.reshape(shape) for v in vs], "s": [s.reshape(shape) for s in ss], "seconds": times}
