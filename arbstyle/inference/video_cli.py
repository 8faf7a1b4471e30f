"""`arbstyle stylize clip.mp4 --style painting.jpg -o out.mp4`: the clip path of the stylize command.

A content with a video extension, or a folder or glob of frames with `--frames`, makes `arbstyle stylize` stylize
one clip: the output is a video when `-o` has a video extension, else a folder of frames. Everything is checked
before the model loads; frames are decoded, stylized and encoded as a stream; the output appears under its name
only when complete (a bad frame, Ctrl-C or a crash leave no output).
"""
from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import numpy as np

from arbstyle import images
from arbstyle.cli import CLIError
from arbstyle.inference import video_io
from arbstyle.inference.video import DEFAULT_BLEND, DEFAULT_TEMPORAL, TEMPORAL_MODES
from arbstyle.progress import Progress


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("video (a content ending in .mp4, .mov, .mkv, .webm, .avi or .gif, or --frames)")
    group.add_argument("--frames", action="store_true",
                       help="the content (a folder or glob of images) is the frames of one clip")
    group.add_argument("--temporal", choices=TEMPORAL_MODES, default=DEFAULT_TEMPORAL,
                       help=f"temporal stabilization (default {DEFAULT_TEMPORAL}; see the README's Video section)")
    group.add_argument("--blend", type=float, default=DEFAULT_BLEND,
                       help=f"flow modes: weight of the motion-compensated previous output (default {DEFAULT_BLEND})")
    group.add_argument("--crf", type=int, default=video_io.DEFAULT_CRF,
                       help=f"H.264/VP9 quality, lower is better (default {video_io.DEFAULT_CRF})")
    group.add_argument("--codec", help="FFmpeg encoder (default: libx264, libvpx-vp9 for .webm, gif for .gif)")
    group.add_argument("--preset", default=video_io.DEFAULT_PRESET, help="x264 speed preset (default %(default)s)")
    group.add_argument("--fps", type=float, default=25.0, help="frame rate of a video made from --frames (default 25)")
    group.add_argument("--batch", type=int, help="frames per network call (default: from the memory budget)")


def wants_video(args) -> bool:
    return bool(getattr(args, "frames", False)) or any(video_io.is_video(c) for c in args.content)


def _one_style(args, stylizer) -> tuple[str, np.ndarray]:
    from arbstyle.inference.stylize_cli import expand_inputs, parse_style_embedding, parse_weights

    files = expand_inputs(args.style or [], "style")
    stored = [s for spec in args.style_embedding or [] for s in parse_style_embedding(spec, args.model)]
    count = len(files) + len(stored)
    if count == 0:
        raise CLIError("no styles: give --style images and/or --style-embedding FILE:NAME")
    if count > 1 and not args.style_weights:
        raise CLIError(f"a clip takes one style, got {count}: mix them with --style-weights")
    weights = parse_weights(args.style_weights, count) if args.style_weights else None
    for path in files:
        images.load_image(path, max_side=64)
    if stylizer is None:
        return "", np.zeros(0)
    vectors = [stylizer.embed(str(p)) for p in files] + [s.embedding for s in stored]
    for vector, source in zip(vectors, [str(p) for p in files] + [s.source for s in stored]):
        if vector.shape != (stylizer.embedding_dim,):
            raise CLIError(f"{source}: embedding has {vector.shape[0]} values, model {args.model} expects "
                           f"{stylizer.embedding_dim}")
    names = [p.stem for p in files] + [s.name for s in stored]
    if weights is None:
        return names[0], vectors[0]
    return "+".join(names), stylizer.mix(np.stack(vectors), weights)


def _check(args) -> None:
    from arbstyle.inference.stylize_cli import _check_numbers

    _check_numbers(args)
    if len(args.content) != 1:
        raise CLIError(f"give one clip at a time ({len(args.content)} contents given)")
    if args.pairs:
        raise CLIError("--pairs does not apply to a clip")
    if args.tiling == "on":
        raise CLIError("--tiling on does not apply to a clip (frames are tiled automatically when too large)")
    if not 0.0 <= args.blend < 1.0:
        raise CLIError(f"--blend must be in [0, 1), got {args.blend}")
    if not 0 <= args.crf <= 63:
        raise CLIError(f"--crf must be 0..63, got {args.crf}")
    if args.fps <= 0:
        raise CLIError(f"--fps must be positive, got {args.fps}")
    if args.batch is not None and args.batch < 1:
        raise CLIError(f"--batch must be at least 1, got {args.batch}")


def run_video(args) -> int:
    from arbstyle.inference.stylize_cli import IMAGE_EXTS, OUTPUT_FORMATS, expand_inputs, make_stylizer
    from arbstyle.inference.video import stylize_stream

    _check(args)
    spec = args.content[0]
    out = Path(args.output).expanduser()
    to_video = video_io.is_video(out)
    if not to_video and out.suffix.lower() in IMAGE_EXTS:
        raise CLIError(f"{out}: a clip becomes a video (.mp4, .mov, .mkv, .webm, .avi, .gif) or a folder of frames")
    if out.exists() and not args.overwrite:
        print(f"nothing to do: {out} exists already (use --overwrite)")
        return 0

    if args.frames or not video_io.is_video(spec):
        files = expand_inputs([spec], "frame")
        first = images.load_image(files[0])  # checked before the model loads; later frames as they stream
        height, width = first.shape[:2]
        info = video_io.VideoInfo(width, height, Fraction(args.fps).limit_denominator(1001), len(files), None, 0)
        frames = video_io.read_frame_files(files)
        names = [p.stem for p in files]
        source = None
    else:
        source = Path(spec).expanduser()
        info = video_io.probe(source)
        frames = video_io.read_frames(source, info)
        names = None  # frame_000000, frame_000001, ...
    _one_style(args, None)  # the style files are checked before the model loads, too

    max_size = args.max_size
    width, height = info.width, info.height
    if args.content_size:
        scale = args.content_size / min(width, height)
        max_size = round(max(width, height) * scale)
    codec = args.codec or (video_io.CODECS[out.suffix.lower()][0] if to_video else None)
    even = to_video and codec not in ("gif",)
    size = video_io.output_size(width, height, max_size, even=even)
    if min(size) < images.MIN_SIDE:
        raise CLIError(f"{spec}: frames would be {size[0]}x{size[1]}; each side must be at least {images.MIN_SIDE}")

    stylizer = make_stylizer(args, tile=args.tile_size, bucket=not args.no_bucket)
    style_name, embedding = _one_style(args, stylizer)
    if to_video:
        writer = video_io.VideoWriter(out, width=size[0], height=size[1], fps=info.fps,
                                      sample_aspect=info.sample_aspect,
                                      audio_from=source if info.audio_streams else None,
                                      codec=args.codec, crf=args.crf, preset=args.preset)
    else:
        suffix = OUTPUT_FORMATS[args.format] if args.format else ".png"
        writer = video_io.FrameFolderWriter(out, names, suffix=suffix, quality=args.quality,
                                            overwrite=args.overwrite)
    stream = stylize_stream(stylizer, frames, embedding, strength=args.strength, preserve_color=args.preserve_color,
                            size=size, work_size=args.work_size, temporal=args.temporal, batch=args.batch,
                            blend=args.blend)
    try:
        with writer, Progress(info.frames, desc="stylizing", unit="frame") as bar:
            bar.set_postfix(style=style_name, temporal=args.temporal)
            try:
                for frame in stream:
                    writer.write(frame)
                    bar.update()
            except BaseException:
                bar.quiet = True  # the error is the one line to print, not a last progress line
                raise
    except ValueError as err:
        if isinstance(err, images.ImageError):
            raise
        raise CLIError(f"{spec}: {err}") from None
    print(f"wrote {writer.frames} frame(s) of {size[0]}x{size[1]} to {out}")
    return 0

