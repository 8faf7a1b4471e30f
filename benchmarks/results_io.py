"""How a benchmark keeps its figures: STEM.json (the numbers) beside STEM.md (the page people read)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def _replace_text(path: Path, text: str) -> None:
    # through a temporary file: an interrupted run leaves the previous complete results, never half a file
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results(stem: Path, result: dict, markdown: str) -> None:
    """Write `stem`.json and `stem`.md (creating the folder) and say so."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    _replace_text(stem.with_name(stem.name + ".json"), json.dumps(result, indent=1) + "\n")
    _replace_text(stem.with_name(stem.name + ".md"), markdown if markdown.endswith("\n") else markdown + "\n")
    print(f"wrote {stem}.json and {stem}.md")
