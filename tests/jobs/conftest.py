from __future__ import annotations

import sys
from pathlib import Path

# The provider factories of the test plugins are "module:Class" strings, imported by name:
# make `jobs_helpers` importable the same way here and in the watcher subprocess.
HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
