"""Numeric options of the smaller commands: one line naming the flag, exit status 2, before any work."""
import pytest

from arbstyle.cli import main


@pytest.mark.parametrize("argv, flag", [
    (["data", "bench", "--batch", "0"], "--batch"),
    (["data", "bench", "--size", "60000"], "--size"),
    (["data", "preview", "--out", "x.png", "--seed", "-1"], "--seed"),
    (["data", "bench", "--threads", "0"], "--threads"),
    (["data", "bench", "--steps", "0"], "--steps"),
    (["evaluate", "--model", "gatys", "--styles", "s", "--content", "c", "-o", "r", "--size", "60000"], "--size"),
    (["train", "--config", "experiments/smoke.py", "--workdir", "w", "--num-processes", "0"], "--num-processes"),
    (["train", "--config", "experiments/smoke.py", "--workdir", "w", "--num-processes", "2", "--process-id", "2"],
     "--process-id"),
    (["demo", "--size", "60000"], "--size"),
    (["demo", "--strength", "-0.5"], "--strength"),
])
def test_out_of_range_numbers_are_one_line(argv, flag, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [["data", "info", "nope"], ["data", "build", "nope"],
                                  ["data", "preview", "--content", "nope", "--out", "x.png"]])
def test_unknown_dataset_is_one_line(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv + ["--data-dir", str(tmp_path / "tfds")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown dataset 'nope'" in err, err
    assert not (tmp_path / "x.png").exists()
