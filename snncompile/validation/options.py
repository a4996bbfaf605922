"""Ranges of every numeric option, and output paths, checked before any work is done.

The same rules serve the CLI (as click parameter types: a bad value is a usage error, exit 2)
and library users (:func:`check_compile_options` on a
:class:`~snncompile.passes.build.CompileOptions`, raising :class:`~snncompile.errors.InvalidModel`).
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path

from ..errors import InvalidModel

SEED_MAX = 2**32 - 1          # numpy's SeedSequence / RandomState accept 0..2**32-1
BITS_MIN = 1                  # the profile decides: MIXED needs 2 (profile.MIN_WEIGHT_BITS)
STEPS_MAX = 1024              # TTFS steps K per window (the run lasts about (layers + 1) * K steps)
SIM_STEPS_MAX = 4096          # LIF input steps per sample
EPOCHS_MAX = 10_000
ZETA_MAX = 1e3                # window margin B = (1 + zeta) X
LR_MAX = 10.0
DT_MAX = 1e6
PENALTY_MAX = 1e6
ARCH_WIDTH_MAX = 65_536       # neurons / channels / pixels per dimension in an --arch spec
ARCH_PARAMS_MAX = 100_000_000  # weights of an --arch spec (float32: 400 MB)

# name -> (lo, hi, lo_open, what); every float must also be finite
FLOAT_RULES = {
    "zeta": (0.0, ZETA_MAX, False, "window margin"),
    "lr": (0.0, LR_MAX, True, "learning rate"),
    "dt": (0.0, DT_MAX, True, "time step"),
    "spike_penalty": (0.0, PENALTY_MAX, False, "spike penalty"),
    "spike_reg": (0.0, PENALTY_MAX, False, "spike penalty"),
    "window_scale": (0.0, 1.0, True, "window scale"),
}
INT_RULES = {
    "seed": (0, SEED_MAX),
    "steps": (1, STEPS_MAX),
    "sim_steps": (1, SIM_STEPS_MAX),
    "bits": (BITS_MIN, 32),
    "epochs": (0, EPOCHS_MAX),
    "samples": (1, None),
    "vendor_samples": (1, None),
    "calib_samples": (1, None),
    "batch_size": (1, None),
    "headroom_bits": (0, 16),
}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def float_rule(name: str, value) -> str | None:
    """Why ``value`` is not a valid ``name`` (None when it is)."""
    lo, hi, lo_open, what = FLOAT_RULES[name]
    try:
        v = float(value)
    except (TypeError, ValueError):
        return f"{flag(name)} {value!r}: the {what} must be a number"
    if not math.isfinite(v):
        return f"{flag(name)} {value!r}: the {what} must be finite"
    if (v <= lo if lo_open else v < lo) or v > hi:
        return f"{flag(name)} {value!r}: the {what} must be in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    return None


def int_rule(name: str, value) -> str | None:
    lo, hi = INT_RULES[name]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return f"{flag(name)} {value!r}: must be an integer"
    if value < lo or (hi is not None and value > hi):
        return f"{flag(name)} {value}: must be in {lo}..{'' if hi is None else hi}"
    return None


def check_compile_options(opts, *, where: str = "") -> None:
    """InvalidModel naming the first option of a CompileOptions that is out of range."""
    for name in FLOAT_RULES:
        v = getattr(opts, name, None)
        if v is not None and (why := float_rule(name, v)):
            raise InvalidModel(why)
    for name in INT_RULES:
        v = getattr(opts, name, None)
        if v is not None and (why := int_rule(name, v)):
            raise InvalidModel(why)
    for name, key in (("sweep_bits", "bits"), ("sweep_steps", "steps")):
        for v in getattr(opts, name, ()) or ():
            if why := int_rule(key, v):
                raise InvalidModel(f"{flag(name)}: {why} (every swept value)")
    if not getattr(opts, "targets", ("reference",)):
        raise InvalidModel("--target: give at least one target")
    if getattr(opts, "ray_address", None) and not getattr(opts, "ray", False):
        raise InvalidModel(f"--ray-address {opts.ray_address}: also give --ray (sweeps and evaluations run "
                           "serially without it)")


def check_arch(spec: str) -> None:
    """Sizes in an --arch spec that no machine here can allocate: every integer <= ARCH_WIDTH_MAX
    and, for MLPs (``784-340-10``), at most ARCH_PARAMS_MAX weights."""
    import re

    nums = [int(n) for n in re.findall(r"\d+", str(spec))]
    big = [n for n in nums if n > ARCH_WIDTH_MAX]
    if big:
        raise InvalidModel(f"--arch {spec!r}: size {big[0]} exceeds {ARCH_WIDTH_MAX} (rule: every width, channel "
                           "count and input dimension at most that)")
    parts = str(spec).split("-")
    if all(p.isdigit() for p in parts):
        widths = [int(p) for p in parts]
        total = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        if total > ARCH_PARAMS_MAX:
            raise InvalidModel(f"--arch {spec!r}: {total} weights exceed {ARCH_PARAMS_MAX} (rule: a network this "
                               "tool trains must fit in memory)")


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    return p


def _can_create_in(folder: Path) -> bool:
    """Whether a file can really be created in ``folder`` (os.access says yes to root, and on /proc)."""
    import tempfile

    try:
        fd, tmp = tempfile.mkstemp(prefix=".snncompile-probe.", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(tmp)
    return True


def _writable_below(path: Path, what: str) -> None:
    anc = _nearest_existing(path.parent if path.parent != Path("") else Path("."))
    if not anc.is_dir():
        raise InvalidModel(f"{what} {path}: {anc} exists and is a file, not a folder")
    if not os.access(anc, os.W_OK | os.X_OK) or not _can_create_in(anc):
        raise InvalidModel(f"{what} {path}: folder {anc} is not writable")


def check_out_folder(out, what: str = "--out") -> Path:
    """``--out`` must name a folder: not empty, not an existing file, below a writable folder."""
    if out is None or str(out).strip() == "":
        raise InvalidModel(f"{what}: give a folder name (an empty path would write into the current folder)")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InvalidModel(f"{what} {path}: exists and is not a folder")
    _writable_below(path, what)  # outputs are written to a temporary folder next to --out, then moved
    if path.is_dir() and not (os.access(path, os.W_OK | os.X_OK) and _can_create_in(path)):
        raise InvalidModel(f"{what} {path}: folder is not writable")
    return path


def check_out_file(output, suffixes: tuple = (), what: str = "-o") -> Path:
    """An output file: a name (not a folder), with one of ``suffixes``, below a writable folder."""
    if output is None or str(output).strip() == "":
        raise InvalidModel(f"{what}: give an output file name")
    path = Path(output)
    if suffixes and not str(path).lower().endswith(tuple(s.lower() for s in suffixes)):
        raise InvalidModel(f"{what} {path}: the output must end in {' or '.join(suffixes)}")
    if path.is_dir() or str(output).endswith(os.sep):
        raise InvalidModel(f"{what} {path}: is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise InvalidModel(f"{what} {path}: file is not writable")
    _writable_below(path, what)
    return path


def click_types():
    """click parameter types for the CLI (imported lazily: the library does not need click)."""
    import click

    class FiniteFloat(click.ParamType):
        """A float in the range of FLOAT_RULES[name], finite (click.FloatRange lets nan and inf through)."""

        def __init__(self, name):
            self.rule = name
            lo, hi, lo_open, _ = FLOAT_RULES[name]
            self.name = f"float in {'(' if lo_open else '['}{lo:g}, {hi:g}]"

        def convert(self, value, param, ctx):
            if isinstance(value, float) and float_rule(self.rule, value) is None:
                return value
            try:
                v = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number", param, ctx)
            why = float_rule(self.rule, v)
            if why:
                self.fail(why.split(": ", 1)[1], param, ctx)
            return v

    return {
        "float": FiniteFloat,
        "seed": click.IntRange(0, SEED_MAX),
        "bits": click.IntRange(BITS_MIN, 32),
        "steps": click.IntRange(1, STEPS_MAX),
        "sim_steps": click.IntRange(1, SIM_STEPS_MAX),
        "epochs": click.IntRange(0, EPOCHS_MAX),
    }
