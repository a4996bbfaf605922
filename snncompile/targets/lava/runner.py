"""Running a built Lava network and reading back what every population recorded (both runtimes).

numpy and Lava only (Lava imported inside the functions): the standalone export carries this module.
"""

import os
import time

import numpy as np


def recording_files(workdir: str, tag: str, total: int, neurons: int) -> str:
    """Create ``<prefix>.v.npy`` (int32) and ``<prefix>.s.npy`` (int8), (total, neurons); return the prefix."""
    prefix = os.path.join(workdir, tag)
    for suffix, dtype in ((".v.npy", np.int32), (".s.npy", np.int8)):
        mm = np.lib.format.open_memmap(prefix + suffix, mode="w+", dtype=dtype, shape=(total, neurons))
        del mm
    return prefix


def run_and_read(proc, cfg, total: int, t0: float, recorder: str, procs: list, monitors: list, files: list):
    """Compile and run the network of ``proc`` for ``total`` steps, stop it, and read every population's
    v and spikes (from the recording files, or from the Monitors).  Returns (vs, ss, seconds) with
    vs, ss lists of (total, n) arrays in ``procs`` order and seconds {"build", "run", "read"}."""
    from lava.magma.core.run_conditions import RunSteps

    times = {}
    vs, ss = [], []
    try:
        proc.create_runtime(run_cfg=cfg)
        t1 = time.perf_counter()
        times["build"] = t1 - t0
        proc.run(condition=RunSteps(num_steps=total, blocking=True))
        t2 = time.perf_counter()
        times["run"] = t2 - t1
        if recorder == "monitor":
            for p, (mv, ms) in zip(procs, monitors):
                vs.append(np.asarray(mv.get_data()[p.name]["v"]).astype(np.int64))
                ss.append(np.asarray(ms.get_data()[p.name]["s_out"]) != 0)
    finally:
        try:
            proc.stop()
        except Exception:  # noqa: BLE001 - never mask the run's own error
            pass
    if recorder == "file":
        vs = [np.load(rec + ".v.npy").astype(np.int64) for rec in files]
        ss = [np.load(rec + ".s.npy") != 0 for rec in files]
    times["read"] = time.perf_counter() - t2
    return vs, ss, times
