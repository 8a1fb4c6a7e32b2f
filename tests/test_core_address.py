"""init(address=...) forms raylite does not have get one clear error naming what it does have."""

from __future__ import annotations

import pytest

import raylite


@pytest.mark.parametrize("address", ["ray://127.0.0.1:10001", "RAY://head:10001"])
def test_ray_client_address_is_refused_with_the_alternatives(address):
    raylite.shutdown()
    with pytest.raises(ValueError) as info:
        raylite.init(address=address)
    message = str(info.value)
    assert "no Ray Client" in message and "dask://HOST:8786" in message
    assert "raylite start --head" in message and "\n" not in message
    assert not raylite.is_initialized()


def test_ray_client_address_from_the_environment_is_refused(monkeypatch):
    raylite.shutdown()
    monkeypatch.setenv("RAYLITE_ADDRESS", "ray://head:10001")
    with pytest.raises(ValueError, match="no Ray Client"):
        raylite.init()
    assert not raylite.is_initialized()
