"""rlft: provider-neutral reinforcement fine-tuning."""

from rlft._version import __version__

__all__ = ["__version__"]
