"""Training: ReLU ANNs from an architecture spec (``ann``)."""
