"""Run a grid of training runs and fit scaling laws: `python sweep.py [grid=...] [launcher=slurm] ...`
(see configs/sweep.yaml); the same as `python -m scaling.sweep`."""

from scaling.sweep import main

if __name__ == "__main__":
    main()
