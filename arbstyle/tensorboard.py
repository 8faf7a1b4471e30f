"""TensorBoard event files written (and read back) without TensorFlow or the tensorboard package.

An event file is a sequence of TFRecords, each holding one serialized `tensorflow.Event` protobuf:

    record = uint64 length (little endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)
    masked_crc32c(x) = ((crc >> 15) | (crc << 17)) + 0xa282ead8   (mod 2**32), crc = CRC-32C (Castagnoli)

Only the few protobuf fields TensorBoard needs for scalars and images are encoded, by hand:

    Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
    Summary { repeated Value value = 1; }
    Value   { string tag = 1; float simple_value = 2; Image image = 4; }
    Image   { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4; }

`read_events` decodes the same subset (verifying both CRCs), so tests and tools can check what was written.
"""
from __future__ import annotations

import io
import os
import socket
import struct
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

FILE_VERSION = "brain.Event:2"


# ---- CRC-32C ----------------------------------------------------------------------------------------------------
def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ---- protobuf wire format (the subset used here) ---------------------------------------------------------------
def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 negatives are ten-byte two's complement varints
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _tag(field: int, wire_type: int) -> bytes:
    return _varint((field << 3) | wire_type)


def _field_varint(field: int, value: int) -> bytes:
    return _tag(field, 0) + _varint(int(value))


def _field_bytes(field: int, payload: bytes) -> bytes:
    return _tag(field, 2) + _varint(len(payload)) + payload


def _field_double(field: int, value: float) -> bytes:
    return _tag(field, 1) + struct.pack("<d", float(value))


def _field_float(field: int, value: float) -> bytes:
    return _tag(field, 5) + struct.pack("<f", float(value))


def scalar_value(tag: str, value: float) -> bytes:
    """A serialized Summary.Value holding a scalar."""
    return _field_bytes(1, tag.encode("utf-8")) + _field_float(2, value)


def image_value(tag: str, png: bytes, height: int, width: int, channels: int = 3) -> bytes:
    """A serialized Summary.Value holding an encoded image (colorspace: 1 gray, 3 RGB, 4 RGBA)."""
    image = (_field_varint(1, height) + _field_varint(2, width) + _field_varint(3, channels)
             + _field_bytes(4, png))
    return _field_bytes(1, tag.encode("utf-8")) + _field_bytes(4, image)


def event(step: int, *, wall_time: float | None = None, values: list[bytes] = (), file_version: str | None = None
          ) -> bytes:
    """A serialized Event: either the file-version header or a Summary of `values`."""
    out = _field_double(1, time.time() if wall_time is None else wall_time) + _field_varint(2, step)
    if file_version is not None:
        out += _field_bytes(3, file_version.encode("utf-8"))
    if values:
        out += _field_bytes(5, b"".join(_field_bytes(1, v) for v in values))
    return out


def record(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


def encode_png(image) -> tuple[bytes, int, int]:
    """uint8 (or [0, 1] float) HxWx3 -> (PNG bytes, height, width)."""
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG")
    return buffer.getvalue(), arr.shape[0], arr.shape[1]


class SummaryWriter:
    """Appends scalar and image summaries to one event file in `logdir`.

    Every call writes whole records and flushes, so a killed run leaves a file TensorBoard reads up to the last
    complete record. With enabled=False (every process but the first) all calls do nothing.
    """

    def __init__(self, logdir: str | os.PathLike, *, enabled: bool = True, filename_suffix: str = ""):
        self.enabled = enabled
        self.path: Path | None = None
        self._file = None
        if not enabled:
            return
        logdir = Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}{filename_suffix}"
        self.path = logdir / name
        self._file = open(self.path, "ab")
        self._write(event(0, file_version=FILE_VERSION))

    def _write(self, data: bytes) -> None:
        self._file.write(record(data))
        self._file.flush()

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        if self.enabled and values:
            self._write(event(step, values=[scalar_value(k, float(v)) for k, v in values.items()]))

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars({tag: value}, step)

    def image(self, tag: str, image, step: int) -> None:
        """image: uint8 or [0, 1] float HxWx3."""
        if self.enabled:
            png, height, width = encode_png(image)
            self._write(event(step, values=[image_value(tag, png, height, width)]))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- reading -----------------------------------------------------------------------------------------------------
class EventFileError(ValueError):
    pass


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise EventFileError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of every field of one message; unknown fields are skipped correctly."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise EventFileError(f"unsupported wire type {wire}")
        yield field, wire, value


def parse_event(data: bytes) -> dict:
    """Event bytes -> {'wall_time', 'step', 'file_version', 'scalars': {tag: v}, 'images': {tag: {...}}}."""
    out = {"wall_time": 0.0, "step": 0, "file_version": None, "scalars": {}, "images": {}}
    for field, _, value in _fields(data):
        if field == 1:
            out["wall_time"] = struct.unpack("<d", value)[0]
        elif field == 2:
            out["step"] = value - (1 << 64) if value >= 1 << 63 else value
        elif field == 3:
            out["file_version"] = value.decode("utf-8")
        elif field == 5:
            for vfield, _, vbytes in _fields(value):
                if vfield != 1:
                    continue
                tag, scalar, image = None, None, None
                for f, _, v in _fields(vbytes):
                    if f == 1:
                        tag = v.decode("utf-8")
                    elif f == 2:
                        scalar = struct.unpack("<f", v)[0]
                    elif f == 4:
                        image = {}
                        for g, _, w in _fields(v):
                            image[{1: "height", 2: "width", 3: "colorspace", 4: "png"}.get(g, str(g))] = w
                if scalar is not None:
                    out["scalars"][tag] = scalar
                if image is not None:
                    out["images"][tag] = image
    return out


def read_records(path: str | os.PathLike) -> Iterator[bytes]:
    """The data of every complete record, CRCs verified; a torn final record (a killed writer) ends the file."""
    blob = Path(path).read_bytes()
    pos = 0
    while pos + 12 <= len(blob):
        header = blob[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", blob[pos + 8:pos + 12])
        if header_crc != masked_crc32c(header):
            raise EventFileError(f"{path}: bad length CRC at byte {pos}")
        end = pos + 12 + length + 4
        if end > len(blob):
            return
        data = blob[pos + 12:pos + 12 + length]
        (data_crc,) = struct.unpack("<I", blob[end - 4:end])
        if data_crc != masked_crc32c(data):
            raise EventFileError(f"{path}: bad data CRC in the record at byte {pos}")
        yield data
        pos = end


def read_events(path: str | os.PathLike) -> list[dict]:
    return [parse_event(data) for data in read_records(path)]


def event_files(logdir: str | os.PathLike) -> list[Path]:
    return sorted(Path(logdir).glob("events.out.tfevents.*"))
