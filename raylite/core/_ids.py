"""Unique ids for objects, tasks, actors and workers.

An id is 16 bytes: 8 random bytes fixed per process, then an 8-byte counter. Making one is a
counter step and a pack, no system call, and ids made by different processes never collide.
"""

from __future__ import annotations

import itertools
import os
import struct

_pack = struct.Struct(">Q").pack
_prefix = os.urandom(8)
_counter = itertools.count(1)


def new_id() -> bytes:
    """Return a fresh 16-byte id, unique across processes."""
    return _prefix + _pack(next(_counter))
