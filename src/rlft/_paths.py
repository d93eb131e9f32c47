"""Where rlft keeps its files."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["rlft_home"]


def rlft_home() -> Path:
    """The rlft home folder: ``$RLFT_HOME``, else the user data dir (platformdirs).

    Read on every call, never at import, so tests and profiles can point it elsewhere.
    """
    configured = os.environ.get("RLFT_HOME")
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("rlft", appauthor=False))
