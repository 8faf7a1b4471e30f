import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

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


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Tests never touch the user's real weights cache unless they set ARBSTYLE_HOME themselves.
    if "ARBSTYLE_HOME" not in os.environ:
        monkeypatch.setenv("ARBSTYLE_HOME", str(tmp_path_factory.getbasetemp() / "arbstyle_home"))
