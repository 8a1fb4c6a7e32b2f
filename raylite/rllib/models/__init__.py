"""Ray's ``ray.rllib.models``: ``preprocessors.get_preprocessor``."""

__all__ = ["preprocessors"]
