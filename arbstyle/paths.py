"""Where things live on disk: the user cache for weights and the optional shared data folder."""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Weights cache: $ARBSTYLE_HOME, else the platform's user cache dir."""
    home = os.environ.get("ARBSTYLE_HOME")
    path = Path(home).expanduser() if home else Path(platformdirs.user_cache_dir("arbstyle"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_dir() -> Path | None:
    """The read-only `shared/` folder beside the checkout (data and reference models), if present.

    $ARBSTYLE_SHARED overrides the location. It is never needed: callers fall back or skip without it.
    """
    env = os.environ.get("ARBSTYLE_SHARED")
    candidates = [Path(env)] if env else [REPO_ROOT.parent / "shared", Path.cwd().parent / "shared"]
    for path in candidates:
        if (path / "data").is_dir() or (path / "reference").is_dir():
            return path.resolve()
    return None
