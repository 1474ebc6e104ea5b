"""drzero: R1-Zero-like RL for math, without GRPO's optimisation biases."""

__version__ = "0.1.0"
