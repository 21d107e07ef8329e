"""Train one model: `python train.py [group=option ...] [field=value ...]` (see configs/train.yaml)."""

import hydra
from omegaconf import DictConfig

from scaling.cli import train_main


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    train_main(cfg)


if __name__ == "__main__":
    main()
