"""Callbacks that connect training libraries to Tune: ``raylite.tune.integration.keras``."""

__all__ = ["keras"]
