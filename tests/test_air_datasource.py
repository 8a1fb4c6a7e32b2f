"""Custom datasources: Datasource subclasses (Ray 2.2's create_reader/Reader, today's
get_read_tasks, 1.x's prepare_read) read with read_datasource in parallel read tasks."""

import os

import pandas as pd
import pytest

from raylite.data.datasource import Datasource, Reader, ReadTask, read_datasource


def _pid_block(i):
    return [pd.DataFrame({"part": [i, i], "pid": [os.getpid()] * 2})]


class PartsReader(Reader):
    def __init__(self, rows_per_part):
        self.rows_per_part = rows_per_part

    def get_read_tasks(self, parallelism):
        return [ReadTask(lambda i=i: [pd.DataFrame({"part": [i] * self.rows_per_part})])
                for i in range(parallelism)]


class PartsDatasource(Datasource):  # Ray 2.2
    def create_reader(self, rows_per_part=1):
        return PartsReader(rows_per_part)


class PidDatasource(Datasource):  # today's Ray
    def get_read_tasks(self, parallelism):
        return [ReadTask(lambda i=i: _pid_block(i)) for i in range(parallelism)]


class OldDatasource(Datasource):  # Ray 1.x
    def prepare_read(self, parallelism, value=0):
        return [ReadTask(lambda: [[value]]) for _ in range(parallelism)]


def test_read_datasource_kinds(ray):
    import raylite
    ds = raylite.data.read_datasource(PartsDatasource(), parallelism=3, rows_per_part=2)
    assert ds.num_blocks() == 3
    assert sorted(r["part"] for r in ds.take_all()) == [0, 0, 1, 1, 2, 2]
    pids = {r["pid"] for r in read_datasource(PidDatasource(), parallelism=4).take_all()}
    assert os.getpid() not in pids  # read in tasks, not in the driver
    assert read_datasource(OldDatasource(), parallelism=2, value=7).take_all() == [7, 7]


def test_read_datasource_bad_input(ray):
    with pytest.raises(TypeError, match="Datasource"):
        read_datasource(object())
    with pytest.raises(NotImplementedError, match="get_read_tasks"):
        read_datasource(Datasource())
