"""rlft: provider-neutral reinforcement fine-tuning."""

from rlft._version import __version__
from rlft.hookspecs import hookimpl

__all__ = ["__version__", "hookimpl"]
