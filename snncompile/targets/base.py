"""The target interface and its public registry.

A target is where a compiled network runs.  Every target has the same shape:

    class MyTarget(Target):
        name = "mine"
        families = ("lif",)          # neuron families it runs: "ttfs", "lif"
        kinds = ("quantized",)       # graph kinds it runs: "float" (model.nir), "quantized" (model.q.nir)
        checks_fxsim = True          # a vendor simulator: compared with fxsim at every step
        install = "pip install ..."  # what to install when its software is missing
        shardable = False            # samples independent, run in-process: large evaluations shard (shard.py)

        def run(self, request: RunRequest) -> Run: ...

and one line in :data:`REGISTRY` (``register("mine", "snncompile.targets.mine", "MyTarget")``).
Drivers never branch on a target's name: they hand each target the graph of the kind it
declares, with the inputs encoded once (:mod:`snncompile.encode`).

Times in :class:`LayerRun` are in the target's own unit (``Run.info["time_unit"]``): the float
TTFS reference uses window units (inf = no spike); every discrete-time target uses step
numbers 1..T (-1 = no spike).
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InvalidModel, SnnCompileError, TargetUnavailable

FAMILIES = ("ttfs", "lif")
KINDS = ("float", "quantized")
# Population roles, the same words on every target: "hidden" (a spiking layer of the network),
# "maxpool" (a TTFS max-pool population), "output" (a spiking readout), "readout" (non-spiking).
ROLES = ("hidden", "maxpool", "output", "readout")


@dataclass
class Inputs:
    """The evaluated samples, encoded once.

    ``x``: (N, *input_shape) float values in [0, 1].  ``code``: the input code's name
    (:mod:`snncompile.encode`).  ``spikes``: the encoded form the discrete-time targets read:
    for TTFS, spike counts (N, *input_shape) in 0..K (``latency-K``); for LIF, a raster
    (N, T_in, *input_shape) of 0/1.  ``None`` where only the float TTFS reference runs.
    """

    x: np.ndarray
    code: str
    spikes: np.ndarray | None = None
    steps: int = 0

    def __len__(self) -> int:
        return len(self.x)

    def head(self, n: int) -> Inputs:
        """The first ``n`` samples."""
        return replace(self, x=self.x[:n], spikes=None if self.spikes is None else self.spikes[:n])


@dataclass
class RunRequest:
    """Everything a target needs for one run.

    ``graph``: the NIR graph of the kind the target declares; ``family``: "ttfs" | "lif";
    ``profile``: the :class:`~snncompile.profile.HwProfile` (None for float runs without one);
    ``inputs``: the encoded samples; ``samples``: run only the first n of them (None: all);
    ``options``: target options (``progress``, ``record``, ``batch_size``, ``mode``, ``dt``...),
    each target reads the ones it knows.  ``reference``: the float reference run on the same
    samples, for targets that compare themselves with it (norse).
    """

    graph: object
    family: str
    profile: object = None
    inputs: Inputs | None = None
    samples: int | None = None
    options: dict = field(default_factory=dict)
    reference: Run | None = None

    @property
    def evaluated(self) -> Inputs:
        """The inputs this run evaluates (the first ``samples``)."""
        if self.inputs is None:
            raise InvalidModel("a run needs inputs")
        return self.inputs if self.samples is None else self.inputs.head(min(self.samples, len(self.inputs)))


def _cut(a, k: int):
    return None if a is None else a[:k]


@dataclass
class LayerRun:
    """Per-population result.  ``times``: first-spike time per sample and neuron (module docstring)."""

    name: str
    role: str
    neurons: int
    spikes: np.ndarray                 # (N,) spikes per sample
    times: np.ndarray | None = None    # (N, neurons)
    saturations: np.ndarray | None = None  # (N,) saturation events per sample (fixed point)
    wraps: np.ndarray | None = None        # (N,) wrap events per sample (fixed point)

    def head(self, k: int) -> LayerRun:
        return replace(self, spikes=self.spikes[:k], times=_cut(self.times, k), saturations=_cut(self.saturations, k),
                       wraps=_cut(self.wraps, k))


@dataclass
class Run:
    """The result of one target on N samples.  ``run_seconds``: wall time of the target's own run
    (no compilation, no comparison); ``samples``: N."""

    target: str
    logits: np.ndarray       # (N, n_out), float (fixed point: integer readout times its LSB value)
    decisions: np.ndarray    # (N,) argmax of the readout
    layers: list             # [LayerRun]
    input_spikes: np.ndarray  # (N,) input spikes per sample
    info: dict = field(default_factory=dict)
    raw_logits: np.ndarray | None = None  # fixed point: the integer readout
    traces: dict | None = None  # optional: population -> (N, T, neurons) integer v (bit-exact comparisons)
    spikes: dict | None = None  # optional: population -> (N, T, neurons) bool raster (when recorded)
    run_seconds: float = 0.0

    @property
    def samples(self) -> int:
        return int(len(self.decisions))

    def head(self, k: int) -> Run:
        """The first ``k`` samples of this run (comparisons on a subset)."""
        if k >= self.samples:
            return self
        return replace(self, logits=self.logits[:k], decisions=self.decisions[:k],
                       layers=[la.head(k) for la in self.layers], input_spikes=self.input_spikes[:k],
                       raw_logits=_cut(self.raw_logits, k),
                       traces=None if self.traces is None else {n: v[:k] for n, v in self.traces.items()},
                       spikes=None if self.spikes is None else {n: v[:k] for n, v in self.spikes.items()})


class Target:
    """Base class of every target (module docstring)."""

    name: str = ""
    families: tuple = ()
    kinds: tuple = ()
    checks_fxsim: bool = False
    install: str = ""
    shardable: bool = False

    def accepts(self, family: str, kind: str) -> bool:
        return family in self.families and kind in self.kinds

    def require(self, family: str, kind: str) -> None:
        """InvalidModel naming what this target runs, if it does not run (family, kind)."""
        if family not in self.families:
            raise InvalidModel(f"target {self.name!r} does not run {family.upper()} graphs; it runs "
                               f"{' and '.join(f.upper() for f in self.families)} graphs")
        if kind not in self.kinds:
            want = "the quantized model.q.nir" if "quantized" in self.kinds else "the float model.nir"
            raise InvalidModel(f"target {self.name!r} runs {want}, not a {kind} graph")

    def run(self, request: RunRequest) -> Run:  # pragma: no cover - interface
        raise NotImplementedError


# name -> (module, class); heavy targets are imported only when asked for.
REGISTRY: dict[str, tuple[str, str]] = {}


def register(name: str, module: str, cls: str) -> None:
    """Add a target to the registry (its module is imported on first use)."""
    REGISTRY[name] = (module, cls)


register("reference", "snncompile.targets.reference", "ReferenceTarget")
register("fxsim", "snncompile.targets.fxsim", "FxsimTarget")
register("lava", "snncompile.targets.lava", "LavaTarget")
register("norse", "snncompile.targets.norse", "NorseTarget")
register("netx", "snncompile.targets.netx", "NetxTarget")
register("xylosim", "snncompile.targets.xylo", "XyloSimTarget")


# --emit NAME -> (module, function): ``fn(qgraph, folder, family, inputs) -> Path`` writes a standalone program.
EMITTERS: dict[str, tuple[str, str]] = {"lava": ("snncompile.targets.lava.export", "emit")}


def register_emitter(name: str, module: str, fn: str) -> None:
    EMITTERS[name] = (module, fn)


register_emitter("netx", "snncompile.targets.netx.write", "emit")
register_emitter("xylo", "snncompile.targets.xylo.export", "emit")


def get_emitter(name: str):
    if name not in EMITTERS:
        raise SnnCompileError(f"unknown --emit {name!r}; available: {', '.join(EMITTERS)}")
    module, fn = EMITTERS[name]
    try:
        return getattr(importlib.import_module(module), fn)
    except ImportError as exc:
        raise TargetUnavailable(f"--emit {name} cannot be imported ({exc})") from None


def available_targets() -> list[str]:
    return list(REGISTRY)


def get_target(name: str) -> Target:
    if name not in REGISTRY:
        raise SnnCompileError(f"unknown target {name!r}; available: {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name]
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise TargetUnavailable(f"target {name!r} cannot be imported ({exc})") from None
    return getattr(mod, cls)()


def family_of(graph) -> str:
    """"ttfs" for our TTFS graphs (float or quantized), "lif" for every other spiking graph."""
    from ..ir import get_meta

    return "ttfs" if get_meta(graph).get("format") == "snncompile-ttfs" else "lif"


def run_target(name, graph, x=None, spikes=None, profile=None, samples: int | None = None,
               reference: Run | None = None, **options) -> Run:
    """Run target ``name`` (a registered name or a :class:`Target`) on ``graph`` without building a
    request by hand (library and tests).

    TTFS graphs take ``x`` (N, *input_shape) in [0, 1]; a quantized one encodes it on its K-step
    grid here.  LIF graphs take ``spikes`` (N, T_in, *input_shape) of 0/1.  ``options`` go to the
    target (``record``, ``mode``, ``dt``, ...)."""
    from ..encode import ttfs_counts
    from ..ir import get_meta

    family = family_of(graph)
    if family == "ttfs":
        meta = get_meta(graph)
        K = int(meta.get("steps") or 0)
        x = np.asarray(x, dtype=np.float64)
        if x.size and (x.min() < 0 or x.max() > 1):
            raise InvalidModel("TTFS inputs must lie in [0, 1] (latency code)")
        inputs = Inputs(x, f"latency-{K}", ttfs_counts(x, K) if meta.get("quantized") else None, K)
    else:
        if spikes is None:
            raise InvalidModel("LIF graphs run on input spike rasters: pass spikes=(N, T_in, *input_shape)")
        spikes = np.asarray(spikes)
        inputs = Inputs(np.zeros((len(spikes), 0)) if x is None else np.asarray(x), "raster", spikes,
                        spikes.shape[1] if spikes.ndim > 1 else 0)
    target = name if isinstance(name, Target) else get_target(name)
    return target.run(RunRequest(graph, family, profile, inputs, samples, options, reference))


def decide(logits: np.ndarray) -> np.ndarray:
    """Decision = argmax of the readout (ties go to the lowest index, as numpy and Lava do)."""
    return np.asarray(logits).argmax(axis=1)


def timed(fn, *args, **kwargs):
    """(result, wall seconds) of ``fn(*args, **kwargs)``."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0
