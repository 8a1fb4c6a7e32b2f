"""The hand-written TensorBoard event files decode with the reference protobufs (tensorboardX's)
and the CRC framing TensorBoard checks."""

import struct

import pytest

from raylite.tune import _tfevents


def read_records(path):
    with open(path, "rb") as f:
        data = f.read()
    records, offset = [], 0
    while offset < len(data):
        header = data[offset:offset + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[offset + 8:offset + 12])[0] == _tfevents.masked_crc32c(header)
        body = data[offset + 12:offset + 12 + length]
        crc = data[offset + 12 + length:offset + 16 + length]
        assert struct.unpack("<I", crc)[0] == _tfevents.masked_crc32c(body)
        records.append(body)
        offset += 16 + length
    return records


def test_crc32c_matches_the_known_value():
    assert _tfevents._crc32c_python(b"123456789") == 0xE3069283  # RFC 3720's check value
    assert _tfevents._crc32c(b"123456789") == 0xE3069283


def test_event_file_decodes_with_tensorboardx_protobufs(tmp_path):
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    writer = _tfevents.EventFileWriter(str(tmp_path))
    writer.add_scalars(3, [("ray/tune/loss", 0.25), ("ray/tune/acc", -1.5)])
    writer.add_scalars(2**40, [])
    writer.close()
    first, second, third = [event_pb2.Event.FromString(r) for r in read_records(writer.path)]
    assert first.file_version == "brain.Event:2" and first.wall_time > 0
    assert second.step == 3
    assert [(v.tag, v.simple_value) for v in second.summary.value] == [
        ("ray/tune/loss", 0.25), ("ray/tune/acc", -1.5)]
    assert third.step == 2**40 and not third.summary.value
