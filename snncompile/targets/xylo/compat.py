"""Make ``rockpool.devices.xylo`` importable without samna, without editing site-packages.

rockpool 3.1.0's ``rockpool/devices/xylo/syns65302/__init__.py`` imports ``.afe_samna_pdm`` and
``..syns63300.power_cycles_model`` outside its ``try`` block, and both modules ``import samna``
at the top.  samna is not installable offline (the PyPI ``samna`` is a stub that downloads the
real package at import time: never install it), so ``import rockpool.devices.xylo`` fails
although XyloSim needs only ``xylosim``.  :func:`install` registers an empty module under each
of those two names in :data:`sys.modules` (only when samna itself is not importable), so the
package imports and its own ``try`` blocks put rockpool's "missing samna" shims in place of the
device classes.  Nothing of rockpool is imported when this module is imported;
:func:`require_xylosim` does that, on demand (DESIGN.md section 9).
"""

from __future__ import annotations

import importlib.util
import sys
import types

from ...errors import TargetUnavailable

SAMNA_MODULES = ("rockpool.devices.xylo.syns65302.afe_samna_pdm",
                 "rockpool.devices.xylo.syns63300.power_cycles_model")
INSTALL_HINT = ("pip install rockpool==3.1.0 pybind11 && "
                "pip install --no-build-isolation xylosim==0.1.3  (never install samna)")


def _samna_available() -> bool:
    try:
        return importlib.util.find_spec("samna") is not None and _samna_imports()
    except (ImportError, ValueError):
        return False


def _samna_imports() -> bool:
    try:
        import samna  # noqa: F401
    except Exception:  # the PyPI stub raises at import time when it cannot download
        return False
    return True


def install() -> None:
    """Register the two empty stand-in modules (idempotent; no-op when samna imports)."""
    if _samna_available():
        return
    for name in SAMNA_MODULES:
        if name not in sys.modules:
            mod = types.ModuleType(name, "empty stand-in registered by snncompile.targets.xylo.compat: "
                                         "the real module needs samna")
            mod.__all__ = []
            sys.modules[name] = mod


def require_xylosim():
    """Install the stand-ins and import XyloSim for Xylo Audio 2; returns the ``XyloSim`` class.

    Raises :class:`TargetUnavailable` with the install command when rockpool or xylosim is missing.
    """
    for dist in ("rockpool", "xylosim"):
        if importlib.util.find_spec(dist) is None:
            raise TargetUnavailable(f"{dist} is not installed: {INSTALL_HINT}")
    install()
    try:
        import rockpool.devices.xylo  # noqa: F401
        import xylosim.v2  # noqa: F401
        from rockpool.devices.xylo.syns61201.xylo_sim import XyloSim
    except ImportError as exc:
        raise TargetUnavailable(f"rockpool's XyloSim cannot be imported: {INSTALL_HINT} ({exc})") from None
    return XyloSim
