"""kvae-bench: the Kalman Variational Auto-Encoder as a reproducible benchmark."""

__version__ = "0.1.0"
