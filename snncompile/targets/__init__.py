"""Targets: where a compiled network runs.  One small interface (:class:`Target`), a registry,
lazy imports (Lava is heavy and optional)."""

from .base import LayerRun, Run, Target, available_targets, get_target

__all__ = ["LayerRun", "Run", "Target", "available_targets", "get_target"]
