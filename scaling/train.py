"""Train one model: ``python -m scaling.train`` (or ``scaling-train``, or ``python train.py`` in a checkout)
``[group=option ...] [field=value ...]``; ``-m`` runs one job per combination (see configs/train.yaml)."""

import hydra
from omegaconf import DictConfig

from scaling.cli import CONFIGS, config_files_reported, exit_after_multirun, task_environment, train_main


@hydra.main(config_path=CONFIGS, config_name="train", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    with task_environment():
        train_main(cfg)


def main() -> None:
    with config_files_reported():
        _hydra_main()
    exit_after_multirun()


if __name__ == "__main__":
    main()
