"""Video: `arbstyle stylize clip.mp4`, `Stylizer.stylize_video` and the temporal modes, on tiny real clips.

Clips are encoded in the test with PyAV (H.264 + AAC, the same libraries the CLI uses); the model is the tiny
random-init one of stylize_helpers (as in test_stylize_cli), so that the I/O, streaming and failure paths are
what is tested, quickly.
"""
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from arbstyle import images
from arbstyle.cli import main
from arbstyle.images import save_image
from arbstyle.inference import video_io
from arbstyle.inference.stylize import Stylizer
from arbstyle.inference.video import FlowBlend
from stylize_helpers import TEST_STYLE_SIZE, photo, texture, tiny_stylizer

TESTS = Path(__file__).resolve().parent
_STYLIZERS = {}


@pytest.fixture(autouse=True)
def tiny_registry(monkeypatch):
    def load(name_or_path="magenta-mobile", **kwargs):
        kwargs["style_size"] = min(kwargs.get("style_size", TEST_STYLE_SIZE), TEST_STYLE_SIZE)
        kwargs.pop("activations")
        kwargs.pop("programs", None)  # stored programs are for pretrained names (tests/test_programs.py)
        key = tuple(sorted(kwargs.items()))
        if key not in _STYLIZERS:
            _STYLIZERS[key] = tiny_stylizer(**kwargs)
        return _STYLIZERS[key]

    monkeypatch.setattr(Stylizer, "load", staticmethod(load))


def moving_frames(count, height=32, width=32):
    """A photo panning right by 2 px a frame: real motion for the flow and a changing picture for the codec."""
    big = photo(height, width + 2 * count, seed=3)
    return [(big[:, 2 * i:2 * i + width] * 255).astype(np.uint8) for i in range(count)]


def make_clip(path, count=6, height=32, width=32, fps=12, audio=True, sample_aspect=None, faststart=False):
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"g": "2"}
        if sample_aspect:
            video.codec_context.sample_aspect_ratio = sample_aspect
        if audio:
            sound = out.add_stream("aac", rate=8000)
            sound.layout = "mono"
        for frame in moving_frames(count, height, width):
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if audio:
            t = np.arange(int(8000 * count / fps)) / 8000
            samples = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                                 format="fltp", layout="mono")
            samples.sample_rate, samples.pts = 8000, 0
            for packet in sound.encode(samples):
                out.mux(packet)
            for packet in sound.encode(None):
                out.mux(packet)
    return path


def audio_packets(path):
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


@pytest.fixture()
def style(tmp_path):
    return save_image(texture(64, seed=11), tmp_path / "art.png")


def _run(*argv):
    return main([str(a) for a in argv])


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_clip_round_trip_keeps_frames_rate_size_aspect_and_audio(tmp_path, style):
    clip = make_clip(tmp_path / "clip.mp4", sample_aspect=Fraction(4, 3))
    out = tmp_path / "out.mp4"
    assert _run("stylize", clip, "-s", style, "-o", out) == 0
    src, dst = video_io.probe(clip), video_io.probe(out)
    assert (dst.width, dst.height, dst.fps, dst.frames) == (32, 32, Fraction(12), 6)
    assert dst.sample_aspect == src.sample_aspect == Fraction(4, 3)
    frames = list(video_io.read_frames(out))
    assert len(frames) == 6 and frames[0].shape == (32, 32, 3)
    assert audio_packets(out) == audio_packets(clip)  # copied packet for packet, not re-encoded
    assert np.abs(frames[3].astype(int) - moving_frames(6)[3]).mean() > 10  # stylized, not copied through

    small = tmp_path / "small.mkv"
    assert _run("stylize", clip, "-s", style, "-o", small, "--max-size", "16", "--temporal", "off") == 0
    info = video_io.probe(small)
    assert (info.width, info.height, info.audio_streams) == (16, 16, 1)
    assert len(list(video_io.read_frames(small))) == 6
    assert _leftovers(tmp_path) == []
    # written through a temporary file, yet with the permissions a plain new file gets (not mkstemp's 0600)
    assert (out.stat().st_mode & 0o777, small.stat().st_mode & 0o777) == (images.FILE_MODE, images.FILE_MODE)


def test_frames_folder_in_and_out_and_gif(tmp_path, style):
    frames = tmp_path / "frames"
    for i, frame in enumerate(moving_frames(5)):
        save_image(frame, frames / f"f{i:03d}.png")
    out = tmp_path / "styled"
    assert _run("stylize", frames, "--frames", "-s", style, "-o", out) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"f{i:03d}.png" for i in range(5)]
    assert out.stat().st_mode & 0o777 == images.FOLDER_MODE  # not mkdtemp's 0700
    gif = tmp_path / "styled.gif"
    assert _run("stylize", str(frames / "*.png"), "--frames", "-s", style, "-o", gif, "--fps", "10") == 0
    info = video_io.probe(gif)
    assert (info.width, info.height) == (32, 32) and len(list(video_io.read_frames(gif))) == 5


@pytest.mark.parametrize("kind", ["truncated", "text", "unwritable"])
def test_bad_clip_or_output_is_one_line_exit_2_and_no_output(tmp_path, style, capsys, kind):
    clip = make_clip(tmp_path / "clip.mp4", count=12, faststart=True)
    out = tmp_path / "out.mp4"
    if kind == "truncated":
        data = clip.read_bytes()
        bad = tmp_path / "cut.mp4"
        bad.write_bytes(data[:len(data) * 2 // 3])
        argv = [bad, "-o", out]
    elif kind == "text":
        bad = tmp_path / "notes.mp4"
        bad.write_text("this is a text file, not a video\n")
        argv = [bad, "-o", out]
    else:
        (tmp_path / "afile").write_text("a file where a folder should be")
        bad = out = tmp_path / "afile" / "out.mp4"
        argv = [clip, "-o", out]
    assert _run("stylize", argv[0], "-s", style, *argv[1:]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0], err
    if kind == "truncated":
        assert "frame " in err[0]  # names the frame index where the clip breaks
    assert not out.exists() and _leftovers(tmp_path) == []


def test_sigint_mid_clip_leaves_no_partial_file(tmp_path, style):
    # long enough that a quiet machine (130+ frames/s with the tiny model) is still encoding when the signal comes
    clip = make_clip(tmp_path / "long.mp4", count=2400, audio=False)
    out = tmp_path / "out.mp4"
    # Ctrl-C's default handler, also when the test runner was started in the background (a non-interactive
    # shell starts background jobs with SIGINT ignored, and Python then installs no KeyboardInterrupt handler)
    script = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
              "import sys; sys.path.insert(0, sys.argv[1]); import test_video as t; "
              "from arbstyle.inference.stylize import Stylizer; "
              "Stylizer.load = staticmethod(lambda *a, **k: t.tiny_stylizer()); "
              "from arbstyle.cli import main; sys.exit(main(sys.argv[2:]))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", script, str(TESTS), "stylize", str(clip), "-s", str(style),
                             "-o", str(out), "--batch", "1"], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not _leftovers(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the hidden temporary video appears once the model is loaded and encoding starts
    time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert not out.exists() and _leftovers(tmp_path) == []


def test_stylize_video_api_yields_frames_and_pooled_statistics(tmp_path):
    st = tiny_stylizer()
    emb = st.embed(texture(64, seed=5))
    frames = moving_frames(5)
    for mode in ("off", "flow"):
        outs = list(st.stylize_video(frames, emb, temporal=mode))
        assert len(outs) == 5 and outs[0].shape == (32, 32, 3) and outs[0].dtype == np.float32
    pooled = list(st.stylize_video(frames[:2], emb, temporal="stats"))  # a window of two frames
    assert len(pooled) == 2 and np.abs(pooled[0] - outs[0]).mean() > 1e-4
    clip = make_clip(tmp_path / "clip.mp4", count=4, audio=False)
    assert len(list(st.stylize_video(clip, emb, temporal="off", max_size=16))) == 4

    # pooled statistics of identical frames are each frame's own; of different frames, they are not
    x = np.stack([f / 255.0 for f in frames[:2]]).astype(np.float32)
    style = st.cin(np.repeat(emb[None], 2, axis=0))
    alone = np.asarray(st.runner(x, style))
    same = st.runner.pooled(np.stack([x[0], x[0]]), style)
    assert np.abs(same - alone[:1]).max() < 1e-4
    assert np.abs(st.runner.pooled(x, style) - alone).mean() > 1e-4


def test_flow_blend_follows_motion_and_drops_occlusions():
    rng = np.random.default_rng(0)
    scene = (photo(64, 96, seed=1) * 255).astype(np.uint8)
    prev_in, cur_in = scene[:, 8:72] / 255.0, scene[:, 10:74] / 255.0  # a 2 px pan
    prev_out = rng.uniform(0, 1, (64, 64, 3)).astype(np.float32)
    cur_out = rng.uniform(0, 1, (64, 64, 3)).astype(np.float32)
    blend = FlowBlend(0.5)
    assert blend(prev_in.astype(np.float32), prev_out) is prev_out
    out = blend(cur_in.astype(np.float32), cur_out)
    moved = np.roll(prev_out, -2, axis=1)  # the previous output moved with the scene

    def corr(a, b):
        a, b = a[8:-8, 8:-8].ravel(), b[8:-8, 8:-8].ravel()
        return float(np.corrcoef(a, b)[0, 1])

    # an equal blend of two independent images: correlation 1/sqrt(2) with each (0 if the motion were ignored)
    assert corr(out, moved) > 0.6 and corr(out, cur_out) > 0.6 and corr(out, prev_out) < 0.2
    # the blend keeps the stylized frame's contrast (a plain average of the two would have 1/sqrt(2) of it)
    assert out.std() > 0.9 * cur_out.std()

    cut = FlowBlend(0.5)  # a scene cut: nothing of the previous output may show through
    cut(prev_in.astype(np.float32), prev_out)
    other = rng.uniform(0, 1, (64, 64, 3)).astype(np.float32)
    assert np.abs(cut(other, cur_out) - cur_out).mean() < 0.02


def test_image_controls_apply_to_the_whole_clip(tmp_path, style):
    clip = make_clip(tmp_path / "clip.mp4", count=3, audio=False)
    other = save_image(texture(64, seed=12), tmp_path / "other.png")
    embeddings = tmp_path / "styles.npz"
    assert _run("embed", style, other, "-o", embeddings) == 0
    runs = {"plain": ["-s", style],
            "controls": ["-s", style, other, "--style-weights", "0.5,0.5", "--strength", "0.5", "--preserve-color",
                         "--work-size", "16"],
            "stored": ["--style-embedding", f"{embeddings}:art"]}
    outs = {}
    for name, extra in runs.items():
        out = tmp_path / f"{name}"
        assert _run("stylize", clip, *extra, "-o", out, "--temporal", "off") == 0
        outs[name] = np.stack([frame for frame in video_io.read_frame_files(sorted(out.iterdir()))])
    assert outs["plain"].shape == outs["controls"].shape == (3, 32, 32, 3)
    assert np.abs(outs["plain"].astype(int) - outs["controls"]).mean() > 5
    assert np.abs(outs["plain"].astype(int) - outs["stored"]).max() <= 1  # the stored embedding is the same style
