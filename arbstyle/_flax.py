"""Imports Flax without the IPython probe it makes at import time."""
from __future__ import annotations

import sys


def import_flax_without_ipython() -> None:
    """Import flax.nnx without the IPython import it makes only to ask whether it runs in a notebook.

    flax.nnx.reprlib calls IPython's get_ipython() at import time to choose coloured reprs, which loads IPython,
    traitlets and pygments (70 ms on an idle machine; docs/performance.md). A process that has not imported
    IPython cannot be inside an IPython shell, so the answer is known: IPython reads as absent while flax loads
    (flax catches the ImportError), and is importable again afterwards.
    """
    if "flax.nnx" in sys.modules or "IPython" in sys.modules:
        return
    sys.modules["IPython"] = None  # makes `import IPython` raise ImportError
    try:
        import flax.nnx  # noqa: F401
    finally:
        if sys.modules.get("IPython", 0) is None:
            del sys.modules["IPython"]
