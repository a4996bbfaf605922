"""The quantizer: one set of rounding rules (rounding.py), used as a NIR pass (ttfs.py) and
as torch fake-quant for quantization-aware training (fake.py)."""

# The LIF quantizer of each arithmetic, imported on first use (they pull in torch).
_LAZY = {"quantize_lif": ".lif", "quantize_xylo": ".lif_xylo", "quantize_ttfs": ".ttfs"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
