"""Ray's ``ray.rllib.models``: ``ModelCatalog`` (custom torch models) and
``preprocessors.get_preprocessor``."""

from raylite.rllib._custom_model import ModelCatalog

__all__ = ["ModelCatalog", "preprocessors"]
