"""snncompile: deploy trained ReLU and spiking networks on neuromorphic hardware.

The package is imported by the CLI at start-up, so this module imports nothing heavy
(no torch, no lava); each command imports what it needs.
"""

__version__ = "0.1.0"

# The one key under which snncompile stores its own data in NIR node and graph metadata.
METADATA_KEY = "snncompile"

import warnings as _warnings  # noqa: E402

# Datasets are cached as read-only arrays; torch warns when it wraps them, although snncompile
# never writes through those tensors.
_warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
_warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
