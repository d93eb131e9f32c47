"""rlft-acme: an rlft backend for Acme Fine-Tuning, an OpenAI-compatible RFT service.

Users never import this package: they install it and write ``provider = "acme"``. rlft finds it
through the ``rlft`` entry point in ``pyproject.toml``.
"""

__version__ = "0.1.0"
