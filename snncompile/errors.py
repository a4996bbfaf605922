"""Exception types raised by the library.

Every error a user can cause derives from :class:`SnnCompileError`; the CLI turns these
into one-line ``click`` errors with a non-zero exit, and nothing else.  Messages name the
file, node, layer or field at fault.
"""


class SnnCompileError(Exception):
    """Base class of every error snncompile raises on purpose."""


class UnsupportedOperator(SnnCompileError):
    """A model contains an operator / node type that a stage cannot handle."""

    def __init__(self, op: str, node: str, supported, where: str = ""):
        self.op, self.node, self.supported = op, node, sorted(supported)
        loc = f" in {where}" if where else ""
        super().__init__(
            f"unsupported operator {op!r} at node {node!r}{loc}; supported: {', '.join(self.supported)}"
        )


class InvalidModel(SnnCompileError):
    """A model or file is malformed, inconsistent, or does not match the data."""


class DatasetError(SnnCompileError):
    """A dataset is unknown, missing, or corrupt."""


class ProfileError(SnnCompileError):
    """A hardware profile TOML is missing, malformed, or out of range."""


class ProfileViolation(SnnCompileError):
    """A network does not fit a hardware profile (a resource or a bit range is exceeded)."""

    def __init__(self, layer: str, resource: str, needed, limit, profile: str = ""):
        self.layer, self.resource, self.needed, self.limit = layer, resource, needed, limit
        on = f" on profile {profile!r}" if profile else ""
        super().__init__(f"layer {layer!r} does not fit{on}: {resource} needs {needed}, limit is {limit}")


class TargetUnavailable(SnnCompileError):
    """A target's software is not installed or cannot run here."""
