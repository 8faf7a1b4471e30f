"""Progress lines when the stream is not a terminal (log files, CI)."""
import io
import re

from arbstyle.progress import Progress, progress

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d work: \d+/10 pairs \(\d+\.\d%\), ")


def test_non_terminal_stream_gets_timestamped_lines_with_rate_and_eta():
    stream = io.StringIO()
    with Progress(10, desc="work", unit="pairs", stream=stream, every_seconds=0.0) as bar:
        for _ in range(4):
            bar.set_postfix(loss=0.123456)
            bar.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5  # one per update (every_seconds=0) and the closing line
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
