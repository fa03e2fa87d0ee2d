"""Run a benchmark's measurement in a fresh Python process and read the JSON it prints last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_json(
    code: str, args: list[str], *, cwd: Path, what: str, pythonpath: Path | None = None
) -> dict[str, Any]:
    """`code` run by this interpreter with `args` (in `cwd`, importing seam from `pythonpath`
    when given); the object of its last line of output.  Exits naming `what` when it fails."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)} if pythonpath is not None else None
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out
