"""One convention for every bench: ``--smoke`` runs it at its smallest size.

`.ci/run` runs each bench this way (``python bench/<name>.py --smoke``), so a bench that no
longer runs fails CI instead of rotting until someone wants a figure from it. A smoke run goes
through the bench's whole path, baselines included where they need nothing from outside this
machine, and prints its usual lines; its figures are not worth quoting (tiny sizes, a busy CI
machine), and nothing is asserted on time.

Which files are benches: every ``bench/*.py`` whose name does not start with ``_``; helpers
(this module, ``_delay_proxy.py``) do. tests/test_benches.py holds .ci/run's loop to that rule.
"""

from __future__ import annotations

import argparse


def parse(parser: argparse.ArgumentParser, **smallest: object) -> argparse.Namespace:
    """Parse the command line, adding ``--smoke``: it sets each option named in ``smallest``."""
    sizes = ", ".join(
        f"--{name.replace('_', '-')}" + ("" if value is True else f" {value}") for name, value in smallest.items()
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"the smallest size, to check the bench still runs (as .ci/run does): {sizes}",
    )
    args = parser.parse_args()
    if args.smoke:
        for name, value in smallest.items():
            if not hasattr(args, name):
                raise AttributeError(f"--smoke sets {name!r}, which this bench has no option for")
            setattr(args, name, value)
    return args
