"""Ray's ``ray.rllib.offline``: ``JsonWriter`` and ``JsonReader`` of sample batches."""

from raylite.rllib._offline import JsonReader, JsonWriter

__all__ = ["JsonReader", "JsonWriter"]
