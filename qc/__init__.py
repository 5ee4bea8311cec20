"""qc: on-premises AI visual quality control (shared core + plant service)."""

__version__ = "0.1.0"
