"""`python -m scaling fit PATH --out DIR` (and `status SWEEP_DIR`): the analysis side's command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from scaling.errors import UserError
from scaling.fit.run import APPROACHES, fitted


def _fit(args: argparse.Namespace) -> int:
    from scaling.fit.run import write_fit
    from scaling.fit.table import load

    try:
        table = load(Path(args.path), n_col=args.n_col, d_col=args.d_col, c_col=args.c_col, loss_col=args.loss_col,
                     params=args.params, flops=args.flops)
        for note in table.notes:
            print(f"note: {note}", file=sys.stderr)
        for dropped in table.excluded:
            print(f"warning: excluded {dropped}", file=sys.stderr)
        results = write_fit(table, Path(args.out), approaches=tuple(args.approach or APPROACHES),
                            bootstrap=args.bootstrap, seed=args.seed, approach2_method=args.approach2_method,
                            holdout_by=args.holdout_by, holdout_frac=args.holdout_frac)
    except (UserError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = fitted(results)
    if not names:
        print(f"error: no approach could be fitted: {'; '.join(results['notes'])}", file=sys.stderr)
        return 2
    print(f"fitted {', '.join(names)} -> {Path(args.out) / 'fit.json'}, {Path(args.out) / 'report.md'}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from scaling.launch import print_status

    try:
        return print_status(Path(args.sweep_dir))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m scaling")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit scaling laws to a sweep directory or a CSV/JSONL table")
    fit.add_argument("path")
    fit.add_argument("--out", required=True, help="output directory (fit.json, report.md, figures/)")
    fit.add_argument("--n-col", default="N")
    fit.add_argument("--d-col", default="D")
    fit.add_argument("--c-col", default="C")
    fit.add_argument("--loss-col", default="loss")
    fit.add_argument("--approach", action="append", choices=APPROACHES,
                     help="repeat to select several (default: every approach the data supports)")
    fit.add_argument("--approach2-method", default="akima", choices=("akima", "parabola", "huber"))
    fit.add_argument("--params", default="non_embedding", help="parameter count of a sweep: non_embedding|total")
    fit.add_argument("--flops", default="kaplan", help="FLOP convention of a sweep: kaplan|6n|6n_attention|chinchilla")
    fit.add_argument("--bootstrap", type=int, default=200)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--holdout-by", default="flops", choices=("flops", "size"))
    fit.add_argument("--holdout-frac", type=float, default=0.2)
    fit.set_defaults(func=_fit)
    status = sub.add_parser("status", help="show a sweep's status from its directory")
    status.add_argument("sweep_dir")
    status.set_defaults(func=_status)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
