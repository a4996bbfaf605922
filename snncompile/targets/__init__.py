"""Targets: where a compiled network runs.  One interface (:class:`Target`, :class:`RunRequest`,
:class:`Run`), a public registry, lazy imports (Lava is heavy and optional)."""

from .base import (
                   REGISTRY,
                   Inputs,
                   LayerRun,
                   Run,
                   RunRequest,
                   Target,
                   available_targets,
                   family_of,
                   get_target,
                   register,
                   run_target,
)

__all__ = ["REGISTRY", "Inputs", "LayerRun", "Run", "RunRequest", "Target", "available_targets", "family_of",
           "get_target", "register", "run_target"]
