"""The wire between the driver and its workers is declared once (core/local/_protocol.py), and
both ends handle exactly what is declared."""

from __future__ import annotations

import numpy as np

from raylite.core._task import pack_value
from raylite.core.local import _protocol as wire
from raylite.core.local._node_io import ProcessIOMixin
from raylite.core.local._worker import Worker


def test_the_driver_handles_every_message_a_worker_sends_and_nothing_else():
    assert set(ProcessIOMixin._handlers) == set(wire.TO_DRIVER)


def test_the_worker_handles_every_message_the_driver_sends_and_nothing_else():
    taken_by_the_connection = {wire.REPLY, wire.REVOKE, wire.CANCEL, wire.SEALED}
    assert set(Worker.HANDLERS) | taken_by_the_connection == set(wire.TO_WORKER)
    assert not set(Worker.HANDLERS) & taken_by_the_connection


def test_kinds_are_distinct_in_each_direction():
    assert len(set(wire.TO_WORKER)) == len(wire.TO_WORKER)
    assert len(set(wire.TO_DRIVER)) == len(wire.TO_DRIVER)
    assert len(set(wire.LOCATION_KINDS)) == 5


def test_packed_values_carry_declared_location_kinds(tmp_path):
    assert pack_value(1, str(tmp_path), b"x" * 16)[0] == wire.INLINE
    big = pack_value(np.zeros(1 << 20), str(tmp_path), b"y" * 16)
    assert big[0] == wire.SHARED
    assert set(wire.ERROR_KINDS) <= set(wire.LOCATION_KINDS)
