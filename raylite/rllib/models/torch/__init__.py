"""Ray's ``ray.rllib.models.torch``: ``torch_modelv2.TorchModelV2``."""

__all__ = ["torch_modelv2"]
