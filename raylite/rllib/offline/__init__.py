"""Ray's ``ray.rllib.offline``: ``JsonWriter`` and ``JsonReader`` of sample batches (and the
``MultiAgentBatch`` that multi-agent runs write)."""

from raylite.rllib._offline import JsonReader, JsonWriter, MultiAgentBatch

__all__ = ["JsonReader", "JsonWriter", "MultiAgentBatch"]
