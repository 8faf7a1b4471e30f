"""Video and frame-sequence I/O through PyAV (FFmpeg's libraries, shipped in the `av` wheel).

Reading streams RGB frames one at a time; every way a clip can be bad (not a video, truncated, a frame that does
not decode) becomes one `VideoError` line naming the file and, where it applies, the frame index. Writing goes to
a hidden temporary file beside the destination, renamed over it only when the whole clip is encoded, so an
interrupted run never leaves a half-written video. Audio streams are copied packet by packet, never re-encoded,
interleaved with the video as it is written so that memory stays bounded for any length.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from arbstyle import images

VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif")
# container extension -> (codec, pixel format). H.264 4:2:0 plays everywhere; WebM only carries VP8/VP9/AV1.
CODECS = {".mp4": ("libx264", "yuv420p"), ".mov": ("libx264", "yuv420p"), ".mkv": ("libx264", "yuv420p"),
          ".avi": ("libx264", "yuv420p"), ".webm": ("libvpx-vp9", "yuv420p"), ".gif": ("gif", "pal8")}
DEFAULT_CRF = 18  # visually near-lossless for H.264; VP9 reads it on its own 0-63 scale
DEFAULT_PRESET = "medium"


class VideoError(images.ImageError):
    """A bad clip or output; str() is one line: '<path>: <problem>'."""


def is_video(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTS


def _quiet_ffmpeg() -> None:
    # FFmpeg logs every damaged packet to stderr; problems reach the user as one VideoError line instead.
    import av.logging

    av.logging.set_level(av.logging.PANIC)


@dataclass
class VideoInfo:
    """What must survive stylization: size, frame rate, frame count, pixel aspect; and whether audio is there."""

    width: int
    height: int
    fps: Fraction
    frames: int | None  # from the container header; None when it does not say
    sample_aspect: Fraction | None
    audio_streams: int


def probe(path) -> VideoInfo:
    import av

    _quiet_ffmpeg()
    path = Path(path)
    if not path.is_file():
        raise VideoError(path, "no such file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(path, "has no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            fps = stream.average_rate or stream.guessed_rate or stream.base_rate
            sar = ctx.sample_aspect_ratio
            return VideoInfo(width=ctx.width, height=ctx.height, fps=Fraction(fps) if fps else Fraction(25),
                             frames=int(stream.frames) or None,
                             sample_aspect=Fraction(sar) if sar and sar != 1 else None,
                             audio_streams=len(container.streams.audio))
    except VideoError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise VideoError(path, f"not a video FFmpeg can read ({images._describe(err)})") from None


def read_frames(path, info: VideoInfo | None = None) -> Iterator[np.ndarray]:
    """Decode the first video stream as uint8 HxWx3 RGB frames, in presentation order.

    A frame that fails to decode, or a file that ends before the frame count its header promises, raises a
    VideoError naming the frame index.
    """
    import av

    _quiet_ffmpeg()
    info = info or probe(path)
    index = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            decoded = container.decode(stream)
            while True:
                try:
                    frame = next(decoded)
                except StopIteration:
                    break
                except (av.error.FFmpegError, ValueError) as err:
                    raise VideoError(path, f"frame {index}: cannot be decoded ({images._describe(err)})") from None
                yield frame.to_ndarray(format="rgb24")
                index += 1
    except av.error.FFmpegError as err:
        raise VideoError(path, f"frame {index}: cannot be read ({images._describe(err)})") from None
    if index == 0:
        raise VideoError(path, "no frame could be decoded")
    if info.frames and index < info.frames:
        raise VideoError(path, f"frame {index}: missing or corrupt: the header promises {info.frames} frames, "
                               f"only {index} decode (truncated or damaged file?)")


def read_frame_files(files: list[Path]) -> Iterator[np.ndarray]:
    """A sequence of image files as uint8 frames; all must share the first one's size."""
    size = None
    for index, path in enumerate(files):
        frame = images.to_uint8(images.load_image(path))
        if size is None:
            size = frame.shape
        elif frame.shape != size:
            raise images.ImageError(path, f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, the first frame "
                                          f"is {size[1]}x{size[0]}; every frame of a clip must share one size")
        yield frame


def output_size(width: int, height: int, max_size: int | None, *, even: bool) -> tuple[int, int]:
    """The clip's size, scaled to a long side of at most `max_size`; even sides where 4:2:0 chroma needs them."""
    if max_size and max(width, height) > max_size:
        scale = max_size / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    if even:
        width, height = width - width % 2, height - height % 2
    return width, height


def _temp_beside(path: Path, *, folder: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        tmp = tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.chmod(tmp, images.FOLDER_MODE)
        return Path(tmp)
    # the real extension last: FFmpeg picks the container from it
    fd, tmp = images.temp_file(path, suffix=f".tmp{path.suffix}")
    os.close(fd)
    return Path(tmp)


class VideoWriter:
    """Encode RGB frames into `path` (container from its extension), copying the audio of `audio_from`.

    Use as a context manager: the clip appears under its name only if the block finishes without an error;
    otherwise the temporary file is removed.
    """

    def __init__(self, path, *, width: int, height: int, fps: Fraction, sample_aspect: Fraction | None = None,
                 audio_from=None, codec: str | None = None, crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET,
                 pix_fmt: str | None = None):
        import av

        _quiet_ffmpeg()
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in CODECS:
            raise VideoError(self.path, f"unsupported video extension {suffix!r}; use {', '.join(VIDEO_EXTS)}")
        default_codec, default_pix = CODECS[suffix]
        self.codec = codec or default_codec
        self.fps = Fraction(fps)
        self._tmp = None
        self._audio = None
        self.frames = 0
        try:
            self._tmp = _temp_beside(self.path)
            self._out = av.open(str(self._tmp), "w")
            self._video = self._out.add_stream(self.codec, rate=self.fps)
        except (OSError, av.error.FFmpegError, ValueError) as err:
            self._discard()
            raise VideoError(self.path, f"cannot write ({images._describe(err)})") from None
        self._video.width, self._video.height = width, height
        self._video.pix_fmt = pix_fmt or default_pix
        self._video.time_base = 1 / self.fps
        if sample_aspect:
            self._video.codec_context.sample_aspect_ratio = sample_aspect
        if self.codec in ("libx264", "libx265"):
            self._video.options = {"crf": str(crf), "preset": preset}
        elif self.codec.startswith("libvpx"):
            self._video.options = {"crf": str(crf), "b": "0"}
        if audio_from is not None:
            self._open_audio(audio_from)

    def _open_audio(self, source) -> None:
        import av

        src = av.open(str(source))
        if not src.streams.audio:
            src.close()
            return
        pairs = []
        for stream in src.streams.audio:
            try:
                pairs.append((stream, self._out.add_stream_from_template(stream)))
            except (av.error.FFmpegError, ValueError) as err:
                src.close()
                raise VideoError(self.path, f"cannot copy audio stream {stream.index} "
                                            f"({stream.codec_context.name}) into {self.path.suffix}: "
                                            f"{images._describe(err)}") from None
        self._audio_src = src
        self._audio_map = {src_stream.index: out for src_stream, out in pairs}
        self._audio = src.demux(*[s for s, _ in pairs])
        self._pending = None

    def _mux_audio_until(self, seconds: float | None) -> None:
        """Copy audio packets that play before `seconds` (all of them for None): interleaved, bounded memory."""
        if self._audio is None:
            return
        while True:
            packet = self._pending
            if packet is None:
                packet = next(self._audio, None)
                if packet is None:
                    self._audio = None
                    return
            if packet.dts is None:  # demuxers end each stream with an empty flush packet
                self._pending = None
                continue
            if seconds is not None and packet.pts is not None and float(packet.pts * packet.time_base) > seconds:
                self._pending = packet
                return
            self._pending = None
            packet.stream = self._audio_map[packet.stream_index]
            self._out.mux(packet)

    def write(self, frame: np.ndarray) -> None:
        """One RGB frame, uint8 or float in [0, 1], of the writer's size."""
        import av

        arr = images.to_uint8(frame) if frame.dtype != np.uint8 else frame
        if self._video.pix_fmt == "pal8":
            video_frame = av.VideoFrame.from_ndarray(_palettized(arr), format="pal8")
        else:
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
        video_frame.pts = self.frames
        self._mux_audio_until(float(self.frames / self.fps))
        for packet in self._video.encode(video_frame):
            self._out.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder, copy the remaining audio, and move the file into place."""
        for packet in self._video.encode(None):
            self._out.mux(packet)
        self._mux_audio_until(None)
        self._close_streams()
        with open(self._tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(self._tmp, self.path)
        self._tmp = None

    def _close_streams(self) -> None:
        if getattr(self, "_audio_src", None) is not None:
            self._audio_src.close()
            self._audio_src = None
        if getattr(self, "_out", None) is not None:
            self._out.close()
            self._out = None

    def _discard(self) -> None:
        try:
            self._close_streams()
        except Exception:  # noqa: BLE001  (closing a half-written muxer may fail; the file goes anyway)
            pass
        if self._tmp is not None:
            Path(self._tmp).unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.close()
            finally:
                self._discard()
        else:
            self._discard()


def _palettized(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RGB -> (indices, 256x4 ARGB palette): a palette fitted to each frame, as GIF allows (swscale has no
    quantizer of its own)."""
    from PIL import Image

    quantized = Image.fromarray(rgb).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    colours = np.zeros((256, 3), np.uint8)
    used = np.asarray(quantized.getpalette()[:768], np.uint8).reshape(-1, 3)
    colours[:len(used)] = used
    argb = np.concatenate([np.full((256, 1), 255, np.uint8), colours], axis=1)
    return np.asarray(quantized, np.uint8), argb


class FrameFolderWriter:
    """Frames into a new folder of images, which appears under `path` only once every frame is written.

    names: file stems, in order (those of the input frames); frames beyond them are frame_000000, ...
    """

    def __init__(self, path, names: list[str] | None = None, *, suffix: str = ".png", quality: int = 95, overwrite: bool = False):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise VideoError(self.path, "exists and is not a folder")
        self.overwrite = overwrite
        self.names, self.suffix, self.quality = names or [], suffix, quality
        self.frames = 0
        try:
            self._tmp = _temp_beside(self.path, folder=True)
        except OSError as err:
            raise VideoError(self.path, f"cannot write ({images._describe(err)})") from None

    def write(self, frame: np.ndarray) -> None:
        i = self.frames
        name = self.names[i] if i < len(self.names) else f"frame_{i:06d}"
        images.save_image(frame, self._tmp / f"{name}{self.suffix}", quality=self.quality)
        self.frames += 1

    def close(self) -> None:
        if self.path.is_dir() and any(self.path.iterdir()):
            if not self.overwrite:
                raise VideoError(self.path, "folder exists and is not empty (use --overwrite)")
            shutil.rmtree(self.path)
        elif self.path.is_dir():
            self.path.rmdir()
        os.replace(self._tmp, self.path)
        self._tmp = None

    def __enter__(self) -> FrameFolderWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.close()
        finally:
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
