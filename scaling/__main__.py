"""`python -m scaling fit PATH --out DIR` (and `status SWEEP_DIR`): the analysis side's command line."""

from __future__ import annotations

import argparse
import inspect
import logging
import sys
import tempfile
from pathlib import Path

from scaling.errors import UserError
from scaling.fit import checks
from scaling.fit.approach3 import DEFAULT_FORM, FORMS
from scaling.fit.run import APPROACHES, HOLDOUT_BY, fitted
from scaling.fit.table import from_file


def _fit(args: argparse.Namespace) -> int:
    from scaling.fit.run import few_refits, write_fit
    from scaling.fit.table import TOTAL_CONVENTIONS, load

    try:
        if args.total:
            if args.params is not None or args.flops is not None:  # --total would silently override them
                raise UserError("--total sets --params and --flops itself (fix: give --total alone, or --params and "
                                "--flops without it)")
            args.params, args.flops = TOTAL_CONVENTIONS["params"], TOTAL_CONVENTIONS["flops"]
        table = load(Path(args.path), n_col=args.n_col, d_col=args.d_col, c_col=args.c_col, loss_col=args.loss_col,
                     run_col=args.run_col, params=args.params, flops=args.flops)
        for note in table.notes:
            print(f"note: {note}", file=sys.stderr)
        for dropped in table.excluded:
            print(f"warning: excluded {dropped}", file=sys.stderr)
        if (few := few_refits(args.bootstrap)) is not None:
            print(f"warning: {few}", file=sys.stderr)
        _writable(Path(args.out))
        results = write_fit(table, Path(args.out), approaches=tuple(args.approach or APPROACHES),
                            bootstrap=args.bootstrap, seed=args.seed, approach2_method=args.approach2_method,
                            holdout_by=args.holdout_by, holdout_frac=args.holdout_frac, form=args.form)
    except (UserError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = fitted(results)
    refused = [f"{name}: not identifiable: {why}" for name, why in results["not_identifiable"].items()]
    if not names:
        print(f"error: no approach could be fitted: {'; '.join(refused + results['notes'])}", file=sys.stderr)
        return 2
    for line in refused:
        print(f"note: {line}", file=sys.stderr)
    print(f"fitted {', '.join(names)} -> {Path(args.out) / 'fit.json'}, {Path(args.out) / 'report.md'}")
    print(f"{checks.summary(results['checks'])} (report.md, \"Checks\")")
    return 0


def _writable(out: Path) -> None:
    """Before the fit's minutes: --out is a directory this process can write (made if missing)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise UserError(f"--out: cannot write {e.filename or out}: {e.strerror} (fix: name a directory you can "
                        "write, or one that can be made)") from None


def _status(args: argparse.Namespace) -> int:
    from scaling.launch import print_status

    try:
        return print_status(Path(args.sweep_dir))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below {low}")
        return value
    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not in (0, 1); e.g. 0.2 holds out the largest fifth")
    return value


class _Parser(argparse.ArgumentParser):
    """Argument mistakes end with one line naming the flag (exit 2), like every other user error."""

    def error(self, message: str):
        print(f"error: {self.prog}: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    parser = _Parser(prog="python -m scaling")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit scaling laws to a sweep directory or a CSV/JSONL table")
    fit.add_argument("path")
    fit.add_argument("--out", required=True, help="output directory (fit.json, report.md, figures/)")
    # None when not given, so that fit.table.load can refuse a table's flag on a sweep; the defaults are from_file's.
    defaults = {name: p.default for name, p in inspect.signature(from_file).parameters.items()}
    for name, what in (("n_col", "parameter column"), ("d_col", "token column"), ("c_col", "FLOP column"),
                       ("loss_col", "loss column"), ("run_col", "run column (several rows of a run: a curve)")):
        fit.add_argument("--" + name.replace("_", "-"), help=f"a table's {what} (default: {defaults[name]})")
    fit.add_argument("--approach", action="append", choices=APPROACHES,
                     help="repeat to select several (default: every approach the data supports)")
    fit.add_argument("--approach2-method", default="akima", choices=("akima", "parabola", "huber"))
    fit.add_argument("--form", default=DEFAULT_FORM, choices=FORMS,
                     help="approach 3's L(N, D): kaplan_floor (default) or chinchilla (E + A/N^α + B/D^β, the form of "
                     "published fits); the backtest reports both")
    fit.add_argument("--params", help="parameter count of a sweep: non_embedding|total (default: the sweep's own)")
    fit.add_argument("--flops", help="FLOP convention of a sweep: kaplan|6n|6n_attention|chinchilla (default: the "
                     "sweep's own)")
    fit.add_argument("--total", action="store_true", help="total parameters and 6N FLOPs (= --params total --flops 6n)")
    fit.add_argument("--bootstrap", type=_at_least(0), default=200, help="bootstrap refits (0: none)")
    fit.add_argument("--seed", type=_at_least(0), default=0, help="seeds the bootstrap and the fits' starts")
    fit.add_argument("--holdout-by", default="flops", choices=HOLDOUT_BY,
                     help="backtest: hold out the largest nominal budgets (flops) or sizes")
    fit.add_argument("--holdout-frac", type=_fraction, default=0.2,
                     help="backtest: fraction of the budgets (or sizes) held out, in (0, 1); at least one")
    fit.set_defaults(func=_fit)
    status = sub.add_parser("status", help="show a sweep's status from its directory")
    status.add_argument("sweep_dir")
    status.set_defaults(func=_status)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
