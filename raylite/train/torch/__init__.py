"""raylite.train.torch: PyTorch on raylite.train (torch itself is imported only when used).

    from raylite import train
    from raylite.train.torch import TorchTrainer, prepare_data_loader, prepare_model

    def train_loop(config):
        model = prepare_model(torch.nn.Linear(4, 1))          # DDP, on this worker's device
        loader = prepare_data_loader(DataLoader(data, batch_size=32, shuffle=True))
        ...
        train.report({"loss": loss.item()}, checkpoint=TorchCheckpoint.from_model(model))

    result = TorchTrainer(train_loop, scaling_config=ScalingConfig(num_workers=2)).fit()
    TorchPredictor.from_checkpoint(result.checkpoint).predict(batch)
"""

from raylite.train._backend_torch import (TorchConfig, enable_reproducibility, get_device,
                                          prepare_data_loader, prepare_model)
from raylite.train._torch_predictor import TorchCheckpoint, TorchPredictor
from raylite.train._v2 import TorchTrainer

__all__ = ["TorchTrainer", "TorchConfig", "TorchCheckpoint", "TorchPredictor", "prepare_model",
           "prepare_data_loader", "get_device", "enable_reproducibility"]
