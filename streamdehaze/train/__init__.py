"""Training AECR-Net: L1 + contrastive regularisation, one process or several (torchrun + DDP).

``train(TrainConfig(data=['path/to/pairs']))`` or ``streamdehaze train --data path/to/pairs``;
see :mod:`.config` for every setting, :mod:`.data` for the data sources, :mod:`.losses` for the
loss and :mod:`.loop` for checkpoints and resume.
"""

from .config import TrainConfig, load_config_file
from .loop import Trainer, TrainResult, train

__all__ = ["TrainConfig", "Trainer", "TrainResult", "load_config_file", "train"]
