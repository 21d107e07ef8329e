"""Run a grid of training runs and fit scaling laws: ``python -m scaling.sweep`` (or ``scaling-sweep``, or
``python sweep.py`` in a checkout) ``[grid=...] [launcher=slurm] ...`` (see configs/sweep.yaml)."""

import hydra
from omegaconf import DictConfig

from scaling.cli import CONFIGS, sweep_main


@hydra.main(config_path=CONFIGS, config_name="sweep", version_base="1.3")
def main(cfg: DictConfig) -> None:
    sweep_main(cfg)


if __name__ == "__main__":
    main()
