"""Train one model: `python train.py [group=option ...] [field=value ...]` (see configs/train.yaml); the same as
`python -m scaling.train`."""

from scaling.train import main

if __name__ == "__main__":
    main()
