"""TensorBoard event files, written directly: no tensorboardX (whose import pulls in torch,
seconds of start-up) and no TensorFlow.

An event file is a sequence of TFRecords, each holding one serialized ``Event`` protobuf:

    record = uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
    Event   = 1: wall_time (double), 2: step (int64), 3: file_version (string),
              5: summary (Summary)
    Summary = 1: value (repeated Value);  Value = 1: tag (string), 2: simple_value (float)

Only these fields are written (scalars), by hand; the first event carries
``file_version="brain.Event:2"`` as TensorBoard expects. CRC32C comes from the ``crc32c``
package when it is installed, else from a small table computed here.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterable

_CRC_TABLE: list[int] | None = None


def _crc32c_python(data: bytes) -> int:
    global _CRC_TABLE
    if _CRC_TABLE is None:
        table = []
        for byte in range(256):
            crc = byte
            for _ in range(8):
                crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
            table.append(crc)
        _CRC_TABLE = table
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:
    from crc32c import crc32c as _crc32c
except ImportError:  # the optional C implementation
    _crc32c = _crc32c_python


def masked_crc32c(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return bytes((value,))
    value &= (1 << 64) - 1  # int64 as protobuf writes it (negatives as 10 bytes)
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def encode_event(wall_time: float, step: int = 0, scalars: Iterable[tuple[str, float]] = (),
                 file_version: str | None = None) -> bytes:
    """One ``Event`` message, serialized."""
    data = b"\x09" + struct.pack("<d", wall_time)  # field 1, 64-bit
    if step:
        data += b"\x10" + _varint(int(step))  # field 2, varint
    if file_version is not None:
        data += _length_delimited(3, file_version.encode())
    values = b"".join(
        _length_delimited(1, _length_delimited(1, tag.encode()) + b"\x15" + struct.pack("<f", value))
        for tag, value in scalars)
    if values:
        data += _length_delimited(5, values)
    return data


def frame_record(data: bytes) -> bytes:
    """``data`` as one TFRecord."""
    header = struct.pack("<Q", len(data))
    return (header + struct.pack("<I", masked_crc32c(header)) + data
            + struct.pack("<I", masked_crc32c(data)))


class EventFileWriter:
    """Appends scalar events to ``events.out.tfevents.<time>.<host>`` in ``logdir``.

    Example:
        >>> import tempfile
        >>> writer = EventFileWriter(tempfile.mkdtemp())
        >>> writer.add_scalars(1, [("ray/tune/loss", 0.5)])
        >>> writer.close()
    """

    def __init__(self, logdir: str):
        name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}"
        self.path = os.path.join(logdir, name)
        self._file = open(self.path, "ab")  # noqa: SIM115 - held open while the trial runs
        self._write(encode_event(time.time(), file_version="brain.Event:2"))

    def add_scalars(self, step: int, scalars: Iterable[tuple[str, float]]) -> None:
        self._write(encode_event(time.time(), step, scalars))

    def _write(self, event: bytes) -> None:
        self._file.write(frame_record(event))
        self._file.flush()

    def close(self) -> None:
        self._file.close()
