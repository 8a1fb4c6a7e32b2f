"""Ray's ``ray.rllib.models.tf``: ``tf_modelv2.TFModelV2``."""

__all__ = ["tf_modelv2"]
