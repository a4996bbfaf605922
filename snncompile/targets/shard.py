"""Large evaluations split into shards of samples, run serially or as Ray tasks, merged into one Run.

A target whose samples are independent and that runs in this process (``Target.shardable``: the
float reference, fxsim) gives the same per-sample result whatever batch it sees, so an evaluation
of N samples can be cut into contiguous shards, each run as one job of
:func:`snncompile.scaleout.run_jobs` (serially, or as a Ray task with ``--ray``), and the shard
Runs concatenated in order (:func:`merge_runs`).  ``snncompile compile --ray`` shards every such
target's evaluation of at least :data:`SHARD_MIN_SAMPLES` samples into shards of
:data:`SHARD_SAMPLES`.  ``run_seconds`` of a sharded run is the wall time of the whole sharded
evaluation (shards in parallel on Ray); ``info["shards"]`` records the shard count.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..errors import InvalidModel
from .base import LayerRun, Run, RunRequest, get_target

SHARD_MIN_SAMPLES = 10_000  # --ray shards evaluations of at least this many samples ...
SHARD_SAMPLES = 2_500       # ... into shards of this many samples


def shard_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) ranges of at most ``size`` samples covering 0..n."""
    if size < 1:
        raise InvalidModel(f"shard size must be >= 1, got {size}")
    return [(i, min(n, i + size)) for i in range(0, n, size)]


def run_shard(shared: tuple, bounds: tuple[int, int]) -> Run:
    """One shard: the target named in ``shared`` on samples [start, stop) (a Ray task or a serial job)."""
    name, request = shared
    start, stop = bounds
    inputs = request.evaluated
    part = replace(inputs, x=inputs.x[start:stop], spikes=None if inputs.spikes is None else inputs.spikes[start:stop])
    ref = request.reference
    return get_target(name).run(replace(request, inputs=part, samples=None,
                                        reference=None if ref is None else slice_run(ref, start, stop)))


def slice_run(run: Run, start: int, stop: int) -> Run:
    """Samples [start, stop) of a run."""
    def cut(a):
        return None if a is None else a[start:stop]

    return replace(run, logits=run.logits[start:stop], decisions=run.decisions[start:stop],
                   layers=[replace(la, spikes=la.spikes[start:stop], times=cut(la.times), saturations=cut(la.saturations),
                                   wraps=cut(la.wraps)) for la in run.layers],
                   input_spikes=run.input_spikes[start:stop], raw_logits=cut(run.raw_logits),
                   traces=None if run.traces is None else {k: v[start:stop] for k, v in run.traces.items()},
                   spikes=None if run.spikes is None else {k: v[start:stop] for k, v in run.spikes.items()})


def _cat(parts):
    return None if parts[0] is None else np.concatenate(parts)


def merge_info(infos: list, sizes: list[int]):
    """Shard infos -> one: equal values kept, per-sample arrays concatenated, differing numbers
    averaged weighted by shard size (they are per-sample means), dicts merged key by key."""
    first = infos[0]
    if isinstance(first, dict):
        return {k: merge_info([i[k] for i in infos], sizes) for k in first if all(k in i for i in infos)}
    if isinstance(first, np.ndarray) and first.ndim >= 1 and all(len(i) == s for i, s in zip(infos, sizes)):
        return np.concatenate(infos)
    if all(_equal(first, i) for i in infos[1:]):
        return first
    if all(isinstance(i, (int, float, np.number)) and not isinstance(i, bool) for i in infos):
        return float(np.dot(np.asarray(infos, np.float64), sizes) / sum(sizes))
    return first  # labels and the like: the first shard's


def _equal(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def merge_runs(runs: list[Run]) -> Run:
    """Shard runs (in sample order) -> one Run, as if the target had run all samples at once."""
    if not runs:
        raise InvalidModel("no shard runs to merge")
    head = runs[0]
    if any(len(r.layers) != len(head.layers) for r in runs):
        raise InvalidModel(f"target {head.target!r}: shard runs report different populations")
    layers = []
    for k, la in enumerate(head.layers):
        parts = [r.layers[k] for r in runs]
        layers.append(LayerRun(la.name, la.role, la.neurons, np.concatenate([p.spikes for p in parts]),
                               _cat([p.times for p in parts]), _cat([p.saturations for p in parts]),
                               _cat([p.wraps for p in parts])))

    def cat_dict(attr):
        d = getattr(head, attr)
        return None if d is None else {k: np.concatenate([getattr(r, attr)[k] for r in runs]) for k in d}

    sizes = [r.samples for r in runs]
    return Run(head.target, np.concatenate([r.logits for r in runs]), np.concatenate([r.decisions for r in runs]),
               layers, np.concatenate([r.input_spikes for r in runs]), info=merge_info([r.info for r in runs], sizes),
               raw_logits=_cat([r.raw_logits for r in runs]), traces=cat_dict("traces"), spikes=cat_dict("spikes"),
               run_seconds=sum(r.run_seconds for r in runs))


def run_sharded(name: str, request: RunRequest, *, shard_size: int = SHARD_SAMPLES, use_ray: bool = False,
                address: str | None = None, progress: bool = False) -> Run:
    """Target ``name`` on the request's samples, in shards of ``shard_size`` (serial or on Ray),
    merged in order; ``run_seconds``: the wall time of the whole sharded evaluation."""
    from ..scaleout import run_jobs

    target = get_target(name)
    if not getattr(target, "shardable", False):
        raise InvalidModel(f"target {name!r} does not run shards (its samples are not independent in-process runs)")
    n = len(request.evaluated)
    t0 = time.perf_counter()
    opts = {**request.options, "progress": False}
    runs = run_jobs(run_shard, (name, replace(request, options=opts)), shard_bounds(n, shard_size),
                    use_ray=use_ray, address=address, progress=progress, desc=f"{name} shards")
    run = merge_runs(runs)
    run.run_seconds = time.perf_counter() - t0
    run.info["shards"] = len(runs)
    return run
