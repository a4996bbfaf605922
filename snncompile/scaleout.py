"""Independent jobs (sweep points, evaluation shards) run serially or as Ray tasks.

:func:`run_jobs` returns ``[fn(shared, job) for job in jobs]`` in the order of ``jobs`` whichever
way they run, so a serial run and a Ray run produce the same results.  Serial is the default
and needs no Ray; with ``use_ray`` a local Ray (``ray.init(num_cpus=...)``) is started, or the
cluster at ``address`` joined, the shared payload is put into the object store once, every job
becomes one task (1 CPU), a tqdm bar counts finished tasks, and the Ray runtime this call started
is shut down again (``ray.shutdown()``; a Ray session the caller started is left running).

Ray is an optional extra: without it, ``use_ray`` raises
:class:`~snncompile.errors.TargetUnavailable` naming :data:`RAY_INSTALL`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager

from tqdm.auto import tqdm

from .errors import TargetUnavailable

RAY_INSTALL = "pip install 'ray==2.60.0'"
DEFAULT_RAY_CPUS = 2


def import_ray():
    """The ray module, or TargetUnavailable naming the install command."""
    try:
        import ray
    except ImportError as exc:
        raise TargetUnavailable(f"--ray needs Ray, which is not installed here ({exc}); install it with: "
                                f"{RAY_INSTALL}") from None
    return ray


def run_jobs(fn: Callable, shared, jobs: Sequence, *, use_ray: bool = False, address: str | None = None,
             num_cpus: int | None = None, progress: bool = False, desc: str = "jobs") -> list:
    """``[fn(shared, job) for job in jobs]``, serially or as Ray tasks (module docstring).

    ``fn`` must be a module-level function (Ray pickles it by reference); ``shared`` is what every
    job reads (put into Ray's object store once); ``jobs`` small picklable values."""
    jobs = list(jobs)
    if not use_ray:
        return [fn(shared, job) for job in tqdm(jobs, desc=desc, disable=not progress, leave=False)]
    with ray_session(address, num_cpus) as ray:
        task = ray.remote(num_cpus=1)(fn)
        ref = ray.put(shared)
        pending = [task.remote(ref, job) for job in jobs]
        order = {r: i for i, r in enumerate(pending)}
        results: list = [None] * len(jobs)
        with tqdm(total=len(jobs), desc=f"{desc} (ray)", disable=not progress, leave=False) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for r in done:
                    results[order[r]] = ray.get(r)
                    bar.update(1)
        return results


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None):
    """The ray module with a runtime up: the one already running, else a local Ray with ``num_cpus``
    (or the cluster at ``address``), shut down again on exit (only if this call started it)."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs = {"address": address} if address else {"num_cpus": num_cpus or DEFAULT_RAY_CPUS}
    try:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR", **kwargs)
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds (ConnectionError, RuntimeError, ...)
        where = f"the Ray cluster at {address}" if address else "a local Ray runtime"
        raise TargetUnavailable(f"--ray: could not start {where}: {type(exc).__name__}: {exc}") from None
    try:
        yield ray
    finally:
        ray.shutdown()
