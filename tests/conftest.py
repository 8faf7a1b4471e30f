import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One weights cache for the whole run (all xdist workers, session fixtures included), never the user's own cache.
# The weights manager verifies every artifact by sha256 on load and writes atomically, so sharing it is safe.
os.environ.setdefault("ARBSTYLE_HOME", str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "arbstyle_home"))

# The CLI's persistent compilation cache is process-wide: in tests it would let one test's compilations
# satisfy another's and hide compile counts.
os.environ.setdefault("ARBSTYLE_XLA_CACHE", "off")

import arbstyle  # noqa: E402,F401  (XLA flags first)
import pytest  # noqa: E402

from arbstyle.paths import shared_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared():
    """The shared data folder; tests that need it skip cleanly where it is absent."""
    path = shared_dir()
    if path is None:
        pytest.skip("../shared is absent (data and reference models)")
    return path
