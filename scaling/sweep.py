"""Run a grid of training runs and fit scaling laws: ``python -m scaling.sweep`` (or ``scaling-sweep``, or
``python sweep.py`` in a checkout) ``[grid=...] [launcher=slurm] ...`` (see configs/sweep.yaml)."""

import hydra
from omegaconf import DictConfig

from scaling.cli import CONFIGS, config_files_reported, sweep_main, task_environment


@hydra.main(config_path=CONFIGS, config_name="sweep", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    with task_environment():
        sweep_main(cfg)


def main() -> None:
    with config_files_reported():
        _hydra_main()


if __name__ == "__main__":
    main()
