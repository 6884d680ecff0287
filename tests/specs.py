"""Where the marketplace API contracts live: ``../shared/specs`` beside the project root (read-only),
or ``TRADELANE_SPECS_DIR``. A missing folder is an error, never a skip."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPECS_DIR = Path(os.environ.get("TRADELANE_SPECS_DIR") or REPO.parent / "shared" / "specs")
MIRAKL_SPEC = SPECS_DIR / "mirakl" / "mirakl-mmp-seller-openapi.json"
