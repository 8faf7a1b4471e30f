"""TensorBoard event files written without TensorFlow: checked with the protobuf library itself (messages built from
TensorFlow's field numbers), not only with arbstyle's own reader, plus CRCs and torn writes."""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from PIL import Image

from arbstyle import tensorboard as tb


def _event_class():
    """tensorflow.Event / Summary / Summary.Value / Summary.Image, declared with TensorFlow's field numbers."""
    f = descriptor_pb2.FileDescriptorProto(name="arbstyle_test_event.proto", package="tbtest", syntax="proto3")
    T = descriptor_pb2.FieldDescriptorProto

    def add(msg, name, number, kind, label=T.LABEL_OPTIONAL, type_name=None):
        field = msg.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = type_name

    image = f.message_type.add(name="Image")
    add(image, "height", 1, T.TYPE_INT32)
    add(image, "width", 2, T.TYPE_INT32)
    add(image, "colorspace", 3, T.TYPE_INT32)
    add(image, "encoded_image_string", 4, T.TYPE_BYTES)
    value = f.message_type.add(name="Value")
    add(value, "tag", 1, T.TYPE_STRING)
    add(value, "simple_value", 2, T.TYPE_FLOAT)
    add(value, "image", 4, T.TYPE_MESSAGE, type_name=".tbtest.Image")
    summary = f.message_type.add(name="Summary")
    add(summary, "value", 1, T.TYPE_MESSAGE, T.LABEL_REPEATED, ".tbtest.Value")
    event = f.message_type.add(name="Event")
    add(event, "wall_time", 1, T.TYPE_DOUBLE)
    add(event, "step", 2, T.TYPE_INT64)
    add(event, "file_version", 3, T.TYPE_STRING)
    add(event, "summary", 5, T.TYPE_MESSAGE, type_name=".tbtest.Summary")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tbtest.Event"))


def test_crc32c_matches_the_standard_check_value():
    assert tb.crc32c(b"123456789") == 0xE3069283  # the CRC-32C (Castagnoli) check value
    assert tb.crc32c(b"") == 0


def test_events_decode_with_protobuf_and_the_builtin_reader(tmp_path):
    image = (np.random.default_rng(0).random((12, 20, 3)) * 255).astype(np.uint8)
    with tb.SummaryWriter(tmp_path) as writer:
        writer.scalars({"loss/total": 1.5, "loss/style": 0.25}, step=3)
        writer.scalar("train/learning_rate", 1e-5, step=2**40)
        writer.image("samples", image, step=3)
    [path] = tb.event_files(tmp_path)
    assert "tfevents" in path.name

    Event = _event_class()
    events = [Event.FromString(data) for data in tb.read_records(path)]
    assert events[0].file_version == "brain.Event:2" and events[0].wall_time > 1.6e9
    values = {v.tag: v.simple_value for v in events[1].summary.value}
    assert events[1].step == 3 and values == pytest.approx({"loss/total": 1.5, "loss/style": 0.25})
    assert events[2].step == 2**40 and events[2].summary.value[0].simple_value == pytest.approx(1e-5)
    img = events[3].summary.value[0].image
    assert (img.height, img.width, img.colorspace) == (12, 20, 3)
    decoded = np.asarray(Image.open(io.BytesIO(img.encoded_image_string)))
    assert np.array_equal(decoded, image)

    mine = tb.read_events(path)
    assert mine[1]["scalars"] == pytest.approx({"loss/total": 1.5, "loss/style": 0.25})
    assert mine[3]["images"]["samples"]["png"] == img.encoded_image_string
    # And what arbstyle writes is what protobuf itself would serialize for the same message.
    rebuilt = Event(wall_time=mine[1]["wall_time"], step=3)
    for tag, v in (("loss/total", 1.5), ("loss/style", 0.25)):
        rebuilt.summary.value.add(tag=tag, simple_value=v)
    assert rebuilt.SerializeToString() == list(tb.read_records(path))[1]


def test_records_carry_masked_crcs_and_a_torn_tail_is_ignored(tmp_path):
    with tb.SummaryWriter(tmp_path) as writer:
        writer.scalar("a", 1.0, step=1)
    [path] = tb.event_files(tmp_path)
    blob = path.read_bytes()
    (length,) = struct.unpack("<Q", blob[:8])
    assert struct.unpack("<I", blob[8:12])[0] == tb.masked_crc32c(blob[:8])
    assert struct.unpack("<I", blob[12 + length:16 + length])[0] == tb.masked_crc32c(blob[12:12 + length])
    # A writer killed mid-record: the complete records still read.
    path.write_bytes(blob + blob[:20])
    assert [e["scalars"] for e in tb.read_events(path)][1] == {"a": 1.0}
    # A flipped bit is detected, not silently decoded.
    corrupt = bytearray(blob)
    corrupt[-6] ^= 0x01
    path.write_bytes(bytes(corrupt))
    with pytest.raises(tb.EventFileError, match="bad data CRC"):
        tb.read_events(path)


def test_a_disabled_writer_writes_nothing(tmp_path):
    writer = tb.SummaryWriter(tmp_path / "logs", enabled=False)
    writer.scalar("a", 1.0, step=1)
    writer.image("b", np.zeros((8, 8, 3), np.uint8), step=1)
    writer.close()
    assert not (tmp_path / "logs").exists()
