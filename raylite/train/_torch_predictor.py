"""PyTorch checkpoints and predictions: :class:`TorchCheckpoint` and :class:`TorchPredictor`.

A TorchCheckpoint holds ``{"model": nn.Module or state_dict}`` (Ray 2.2's layout), or is a
directory with ``model.pt`` (a ``torch.save``-d module or state dict, today's layout).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from raylite.air.checkpoint import PREPROCESSOR_KEY, Checkpoint
from raylite.train.predictor import Predictor

MODEL_KEY = "model"
MODEL_FILE = "model.pt"

__all__ = ["TorchCheckpoint", "TorchPredictor"]


class TorchCheckpoint(Checkpoint):
    """A checkpoint of a torch model (and the preprocessor to apply before it).

    Example:
        >>> import torch
        >>> ckpt = TorchCheckpoint.from_model(torch.nn.Linear(2, 1))
        >>> isinstance(ckpt.get_model(), torch.nn.Linear)
        True
    """

    @classmethod
    def from_model(cls, model: Any, *, preprocessor: Any = None) -> TorchCheckpoint:
        """The model itself (unwrapped from DDP), pickled with the checkpoint."""
        model = getattr(model, "module", model) if type(model).__name__ == \
            "DistributedDataParallel" else model
        return cls.from_dict({MODEL_KEY: model, PREPROCESSOR_KEY: preprocessor})

    @classmethod
    def from_state_dict(cls, state_dict: dict, *, preprocessor: Any = None) -> TorchCheckpoint:
        """Only the weights: :meth:`get_model` then needs the model to load them into."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"from_state_dict takes a model's state_dict(), got "
                            f"{type(state_dict).__name__}")
        return cls.from_dict({MODEL_KEY: state_dict, PREPROCESSOR_KEY: preprocessor})

    def get_model(self, model: Any = None) -> Any:
        """The saved model; with ``model`` (an instance of the right architecture), the saved
        weights loaded into it (required when only a state_dict was saved)."""
        saved = self._saved_model()
        import torch
        if isinstance(saved, torch.nn.Module):
            if model is None:
                return saved
            saved = saved.state_dict()
        if model is None:
            raise ValueError("this TorchCheckpoint holds a state_dict, not a model: pass the "
                             "model to load it into, get_model(model=MyModel())")
        model.load_state_dict({_strip_ddp(k): v for k, v in saved.items()})
        return model

    def _saved_model(self) -> Any:
        if self.path is not None and os.path.exists(os.path.join(self.path, MODEL_FILE)):
            import torch
            return torch.load(os.path.join(self.path, MODEL_FILE), map_location="cpu",
                              weights_only=False)
        data = self.to_dict()
        if MODEL_KEY not in data:
            raise ValueError(f"this checkpoint has no model: its keys are {sorted(data)}; make "
                             "it with TorchCheckpoint.from_model or from_state_dict")
        return data[MODEL_KEY]


def _strip_ddp(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


class TorchPredictor(Predictor):
    """Predict with a torch model: batches become tensors, the model runs under no_grad.

    Example:
        >>> import numpy as np, torch
        >>> predictor = TorchPredictor(torch.nn.Identity())
        >>> predictor.predict(np.array([[1.0, 2.0]], dtype=np.float32)).tolist()
        [[1.0, 2.0]]
    """

    def __init__(self, model: Any, preprocessor: Any = None, use_gpu: bool = False):
        super().__init__(preprocessor)
        import torch
        self.use_gpu = use_gpu
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        if use_gpu and self.device.type != "cuda":
            raise ValueError("TorchPredictor(use_gpu=True) but torch sees no GPU")
        self.model = model.to(self.device)
        self.model.eval()

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, model: Any = None,
                        use_gpu: bool = False) -> TorchPredictor:
        checkpoint = TorchCheckpoint.from_checkpoint(checkpoint)
        return cls(checkpoint.get_model(model), checkpoint.get_preprocessor(), use_gpu)

    def call_model(self, inputs: Any) -> Any:
        """How the model is called on the batch's tensors (override for other signatures)."""
        return self.model(inputs)

    def _predict_numpy(self, data: Any, dtype: Any = None) -> Any:
        import numpy as np
        import torch

        def tensor(values: Any) -> Any:
            if isinstance(values, np.ndarray) and not values.flags.writeable:
                # a zero-copy batch from the object store: read-only, and the model only reads
                # it, so torch's warning about writing to it does not apply
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", "The given NumPy array is not writable")
                    return torch.as_tensor(values, dtype=_dtype(dtype, values),
                                           device=self.device)
            return torch.as_tensor(values, dtype=_dtype(dtype, values), device=self.device)

        inputs = {k: tensor(v) for k, v in data.items()} if isinstance(data, dict) \
            else tensor(data)
        with torch.no_grad():
            output = self.call_model(inputs)
        if isinstance(output, dict):
            return {k: v.cpu().numpy() for k, v in output.items()}
        return output.cpu().numpy()


def _dtype(dtype: Any, values: Any) -> Any:
    import numpy as np
    import torch
    if isinstance(dtype, dict):
        raise ValueError("TorchPredictor.predict(dtype=...) takes one torch dtype")
    if dtype is not None:
        return dtype
    if getattr(values, "dtype", None) == np.float64:
        return torch.float32  # models hold float32 weights; numpy's default would not match
    return None
