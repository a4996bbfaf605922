"""Make lava-nc 0.10.0 importable on Python 3.11 without editing site-packages.

Lava 0.10.0 declares Python < 3.11.  On 3.11 exactly one module fails to import:
``lava/magma/compiler/var_model.py`` uses dataclass *instances* (``ByteEncoder()``) as field
defaults, which Python 3.11's dataclasses reject ("mutable default ... use default_factory").
Every Lava import goes through that module, so nothing of Lava loads.

:func:`install` puts a :class:`sys.meta_path` finder in front of the normal ones.  For that one
module it reads the installed source, rewrites ``= ByteEncoder()`` to
``= field(default_factory=ByteEncoder)`` (and imports ``field``), compiles the result under
the original file name (tracebacks still point at the real file) and executes it.  Every other
module, of Lava or not, is left to the normal import system.  Lava is never imported when this
module is imported; :func:`require_lava` does that, on demand (DESIGN.md section 6).

The standalone export (:mod:`.export`) carries this module as it is: it imports only the
standard library and :mod:`snncompile.errors`.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys

from ...errors import TargetUnavailable

PATCHED_MODULE = "lava.magma.compiler.var_model"
INSTALL_HINT = ("pip install --no-deps --ignore-requires-python lava-nc==0.10.0 "
                "'asteval>=0.9.31,<0.10' 'networkx<=2.8.7'")

_DEFAULT = re.compile(r"=\s*ByteEncoder\(\s*\)")


def patch_source(source: str) -> str:
    """The var_model source with dataclass-instance defaults turned into default factories."""
    patched = _DEFAULT.sub("= field(default_factory=ByteEncoder)", source)
    if patched == source:
        return source
    line = "from dataclasses import field as field  # added by snncompile lava_compat\n"
    m = re.search(r"^from dataclasses import [^\n]*\n", patched, flags=re.M)
    if m is None:  # after the last __future__ import (which must stay first), else at the top
        futures = list(re.finditer(r"^from __future__ import [^\n]*\n", patched, flags=re.M))
        m = futures[-1] if futures else None
    at = m.end() if m else 0
    return patched[:at] + line + patched[at:]


class _PatchingLoader(importlib.abc.SourceLoader):
    """Loads one module from its file, with :func:`patch_source` applied before compiling."""

    def __init__(self, fullname: str, path: str):
        self.fullname, self.path = fullname, path

    def get_filename(self, fullname: str) -> str:
        return self.path

    def get_data(self, path: str) -> bytes:
        with open(path, "rb") as fh:
            data = fh.read()
        if path == self.path:
            data = patch_source(data.decode("utf-8")).encode("utf-8")
        return data

    def path_stats(self, path):  # no bytecode cache: the cached .pyc would be the unpatched one
        raise OSError("no bytecode cache for patched modules")


class VarModelFinder(importlib.abc.MetaPathFinder):
    """Finds ``lava.magma.compiler.var_model`` with the normal path finder, loads it patched."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != PATCHED_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            return spec
        return importlib.util.spec_from_file_location(fullname, spec.origin,
                                                      loader=_PatchingLoader(fullname, spec.origin))


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (idempotent)."""
    if not any(isinstance(f, VarModelFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, VarModelFinder())


def require_lava():
    """Install the hook and import Lava; :class:`TargetUnavailable` with the install command if missing.

    Lava's runtime calls ``multiprocessing.set_start_method('fork')`` when it is first imported,
    which raises "context has already been set" if anything (torch, a DataLoader) fixed the
    start method before.  Lava runs its processes with the default context and needs fork, so
    that one call is made with ``force=True`` while Lava is imported.
    """
    install()
    import multiprocessing as mp

    original = mp.set_start_method

    def _forced(method, force=False):
        original(method, force=True)

    mp.set_start_method = _forced
    try:
        import lava  # noqa: F401
        import lava.magma.compiler.var_model  # noqa: F401
        import lava.magma.core.run_configs  # noqa: F401
        import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
    except ImportError as exc:
        raise TargetUnavailable(f"lava-nc is not installed: {INSTALL_HINT} ({exc})") from None
    finally:
        mp.set_start_method = original
    return sys.modules["lava"]
