"""Every benchmark script still imports and parses its arguments: they run rarely, so breakage shows here first."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
# Scripts that need torch or TensorFlow import them inside main(), so their --help works without them.
# peak_rss takes a module to run, not --help.
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if "__main__" in p.read_text() and p.name != "peak_rss.py")


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_script_imports_and_shows_help(script):
    out = subprocess.run([sys.executable, str(BENCHMARKS / script), "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage:" in out.stdout


def test_results_are_written_whole_as_json_and_markdown(tmp_path, monkeypatch):
    import json

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from results_io import write_results

    write_results(tmp_path / "deep" / "bench", {"seconds": 1.5}, "# Bench")
    assert json.loads((tmp_path / "deep" / "bench.json").read_text()) == {"seconds": 1.5}
    assert (tmp_path / "deep" / "bench.md").read_text() == "# Bench\n"
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["bench.json", "bench.md"]  # no temp files left
