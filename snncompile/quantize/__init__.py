"""The quantizer: one set of rounding rules (rounding.py), used as a NIR pass (ttfs.py) and
as torch fake-quant for quantization-aware training (fake.py)."""
