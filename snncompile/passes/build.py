"""What the passes share: the options of a compile and the state it builds up."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_VENDOR_SAMPLES = None  # vendor simulators (Lava, ...) run every evaluated sample unless limited
EMIT_SAMPLES = 20              # samples written beside an emitted program (inputs.npz) by default


@dataclass
class CompileOptions:
    """Options of ``snncompile compile``.  ``None`` means "the family's default"; an option given
    for a family that has no use for it is an error (:mod:`.ttfs`, :mod:`.lif` ``check_options``)."""

    dataset: str
    targets: tuple = ("reference",)
    profile: str | None = None
    steps: int | None = None          # TTFS: steps K per window (default 16)
    bits: int | None = None
    zeta: float | None = None         # TTFS: window margin B = (1 + zeta) X (default 0.5)
    samples: int | None = None        # evaluate the first N test samples
    calib_samples: int | None = None  # training samples used to calibrate (None: all; LIF: 200)
    headroom_bits: int = 1
    seed: int = 0
    vendor_samples: int | None = DEFAULT_VENDOR_SAMPLES  # vendor simulators: only the first N evaluated samples
    emit: tuple = ()
    sweep_bits: tuple = ()
    sweep_steps: tuple = ()
    sweep_profiles: tuple = ()        # TTFS sweep: hardware profiles (default: --profile)
    sweep_seeds: tuple = ()           # TTFS sweep: seeds of random calibration draws (passes/sweep.py)
    ray: bool = False                 # run the sweep's jobs as Ray tasks (snncompile/scaleout.py)
    ray_address: str | None = None    # join this Ray cluster instead of starting a local one
    shard_min: int | None = None      # with ray: shard evaluations of at least this many samples (None: 10,000)
    shard_size: int | None = None     # ... into shards of this many (None: 2,500; targets/shard.py)
    progress: bool = True
    dt: float | None = None           # LIF: time step (default: the graph's, else 1); TTFS: norse's step (1/K)
    encoding: str | None = None       # LIF: regular | rate | latency (default: the graph's, else regular)
    sim_steps: int | None = None      # LIF: input steps per sample (default: the graph's, else 32)
    split_weights: tuple | None = None  # LIF on Loihi: connections that get a residual connection (quantize/lif.py)
    weight_scale: str | None = None   # TTFS: per-layer weight scale auto | max | mse (auto: quantize/scale_rule.py)


@dataclass
class Build:
    """The state one compile builds up, pass by pass."""

    opts: CompileOptions
    source: object
    src: str = ""
    family: str = ""
    data: object = None           # snncompile.data.Dataset
    ann: object = None            # AnnModel (ANN sources)
    graph: object = None          # float NIR graph (model.nir)
    qgraph: object = None         # quantized NIR graph (model.q.nir)
    net: object = None            # the family's view of the float graph (SpikingNet for LIF)
    input_shape: tuple = ()
    profile: object = None
    quantization: list | None = None
    mapping: dict | None = None
    inputs: object = None         # targets.base.Inputs (test samples, encoded once)
    y: np.ndarray | None = None
    ann_decisions: np.ndarray | None = None
    dt: float | None = None
    runs: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    plots: dict = field(default_factory=dict)   # title -> (plot function, args, kwargs), drawn by the write step

    @property
    def needs_quantized(self) -> bool:
        from ..targets.base import get_target

        return any("quantized" in get_target(t).kinds for t in self.opts.targets) or self.sweeps or bool(
            self.opts.emit)

    @property
    def sweeps(self) -> bool:
        o = self.opts
        return bool(o.sweep_bits or o.sweep_steps or o.sweep_profiles or o.sweep_seeds)

    @property
    def emit_samples(self) -> int:
        n = self.opts.vendor_samples or EMIT_SAMPLES
        return min(n, len(self.inputs))
