"""The chaos tests reuse the supervisor tests' helpers (supervisor subprocess, bounded waits)."""

from __future__ import annotations

import sys
from pathlib import Path

_SUP = str(Path(__file__).resolve().parents[1] / "supervisor")
if _SUP not in sys.path:
    sys.path.insert(0, _SUP)
