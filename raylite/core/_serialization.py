"""Turning values into bytes and back, in one layout for inline messages and shared memory.

A serialized object is pickle protocol 5 with its large buffers (numpy arrays, Arrow columns)
kept out of band, laid out as::

    "RLO1" | u32 buffer count | u64 pickle length | (u64 offset, u64 length) per buffer
    | pickle bytes | buffers, each 64-byte aligned

Small objects travel as these bytes inside messages. Large ones are written once into a file
under /dev/shm; readers ``mmap`` it read-only and unpickle with the buffers pointing into the
mapping, so a numpy array comes back without a copy (read-only, as in Ray).

Values are pickled with the standard pickler when they are plain data, and with cloudpickle
otherwise, so functions, lambdas and classes defined in ``__main__`` travel by value.
"""

from __future__ import annotations

import mmap
import os
import pickle
import struct
from typing import Any

from raylite.core._refs import collect_refs

MAGIC = b"RLO1"
_HEAD = struct.Struct("<4sIQ")
_BUF = struct.Struct("<QQ")
ALIGN = 64
INLINE_LIMIT = 100 * 1024  # bytes; larger objects go to shared memory, as in Ray

_PLAIN = frozenset((type(None), bool, int, float, str, bytes, complex))


class Serialized:
    """A pickled value with its out-of-band buffers and the object ids it contains."""

    __slots__ = ("data", "buffers", "contained", "size")

    def __init__(self, data: bytes, buffers: list, contained: list[bytes]):
        self.data = data
        self.buffers = buffers
        self.contained = contained
        self.size = len(data) + sum(b.nbytes for b in buffers)

    def layout(self) -> tuple[bytes, list[tuple[int, memoryview]]]:
        """Header bytes and (offset, buffer) pairs of the on-wire/on-disk layout."""
        n = len(self.buffers)
        start = _HEAD.size + n * _BUF.size
        offset = start + len(self.data)
        table, placed = [], []
        for buf in self.buffers:
            offset = (offset + ALIGN - 1) // ALIGN * ALIGN
            table.append(_BUF.pack(offset, buf.nbytes))
            placed.append((offset, buf))
            offset += buf.nbytes
        header = _HEAD.pack(MAGIC, n, len(self.data)) + b"".join(table)
        return header, placed

    def to_bytes(self) -> bytes:
        header, placed = self.layout()
        if not placed:
            return header + self.data
        out = bytearray(header + self.data)
        for offset, buf in placed:
            out.extend(b"\0" * (offset - len(out)))
            out.extend(buf)
        return bytes(out)

    def write_file(self, path: str) -> int:
        """Write into a new file at ``path`` (created exclusively); returns its size."""
        header, placed = self.layout()
        total = placed[-1][0] + placed[-1][1].nbytes if placed else len(header) + len(self.data)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.pwrite(fd, header + self.data, 0)
            for offset, view in placed:  # contiguous byte views (PickleBuffer.raw())
                written = 0
                while written < view.nbytes:
                    written += os.pwrite(fd, view[written:written + (1 << 30)], offset + written)
            if os.fstat(fd).st_size < total:
                os.ftruncate(fd, total)
        finally:
            os.close(fd)
        return total


def _dumps(value: Any, buffers: list) -> bytes:
    if type(value) in _PLAIN:
        return pickle.dumps(value, protocol=5)
    if type(value) is tuple and all(type(v) in _PLAIN for v in value):
        return pickle.dumps(value, protocol=5)
    import cloudpickle
    return cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)


def serialize(value: Any) -> Serialized:
    """Pickle ``value`` with out-of-band buffers, recording the ObjectRefs inside it."""
    buffers: list = []
    with collect_refs() as contained:
        data = _dumps(value, buffers)
    return Serialized(data, [b.raw() for b in buffers], list(contained))


def loads(view) -> Any:
    """Unpickle the layout held in ``view`` (bytes, memoryview or mmap); buffers are not copied."""
    view = memoryview(view)
    magic, n, plen = _HEAD.unpack_from(view, 0)
    if magic != MAGIC:
        raise ValueError("corrupt raylite object: bad magic")
    pos = _HEAD.size
    buffers = []
    for _ in range(n):
        offset, length = _BUF.unpack_from(view, pos)
        pos += _BUF.size
        buffers.append(view[offset:offset + length])
    return pickle.loads(view[pos:pos + plen], buffers=buffers)


def read_file(path: str) -> Any:
    """Map the object file at ``path`` read-only and unpickle it without copying its buffers."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        mapped = mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ) if size else b""
    return loads(mapped)


def source_file(fn: Any) -> str | None:
    """The file a function or class was defined in, if there is one."""
    import inspect
    try:
        filename = inspect.getsourcefile(fn)
    except (TypeError, OSError):  # builtins, code typed at `python -c` or a REPL
        return None
    return filename if filename and not filename.startswith("<") else None


def dumps_function(fn: Any, filename: str | None = None) -> bytes:
    """Pickle a function or class by value where needed (cloudpickle), with its source file.

    cloudpickle blanks the file name of code it pickles by value; ``loads_function`` puts it
    back so that remote tracebacks point at the user's file and line.
    """
    import cloudpickle
    return cloudpickle.dumps((fn, filename or source_file(fn)), protocol=5)


def loads_function(blob: bytes) -> Any:
    import cloudpickle
    fn, filename = cloudpickle.loads(blob)
    if filename:
        _restore_filename(fn, filename)
    return fn


def _restore_filename(obj: Any, filename: str) -> None:
    targets = [obj]
    if isinstance(obj, type):
        targets = [getattr(v, "__func__", v) for v in vars(obj).values()]
        targets += [v.fget for v in vars(obj).values() if isinstance(v, property) and v.fget]
    for target in targets:
        code = getattr(target, "__code__", None)
        if code is not None and code.co_filename == "<dynamic-code>":
            try:
                target.__code__ = _with_filename(code, filename)
            except (TypeError, ValueError):
                pass


def _with_filename(code, filename: str):
    consts = tuple(_with_filename(c, filename) if hasattr(c, "co_filename") else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def describe_unpicklable(value: Any, label: str) -> str:
    """Find the innermost part of ``value`` that cannot be pickled, for a helpful error."""
    import cloudpickle

    def fails(obj: Any) -> bool:
        try:
            cloudpickle.dumps(obj)
            return False
        except Exception:
            return True

    path, current = label, value
    for _ in range(8):
        children: list[tuple[str, Any]] = []
        if isinstance(current, dict):
            children = [(f"{path}[{k!r}]", v) for k, v in current.items()]
        elif isinstance(current, (list, tuple, set)):
            children = [(f"{path}[{i}]", v) for i, v in enumerate(current)]
        elif hasattr(current, "__dict__") and not isinstance(current, type):
            children = [(f"{path}.{k}", v) for k, v in vars(current).items()]
        bad = next(((p, c) for p, c in children if fails(c)), None)
        if bad is None:
            break
        path, current = bad
    return f"{path} (an object of type {type(current).__name__}: {current!r:.80})"
