"""Exact ReLU -> time-to-first-spike (TTFS) conversion and its float reference (DESIGN.md section 3)."""
