"""The job folder the worker writes: one import site, so the shared machinery can move.

Until the generic worker lifecycle is public (``rlft.workers``), the local runner's job folder
is used as is: the same files, events and state words.
"""

from __future__ import annotations

from rlft_providers.local._jobdir import JobDir, utcnow

__all__ = ["JobDir", "utcnow"]
