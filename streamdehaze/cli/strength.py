"""``--strength``, shared by ``run``, ``image`` and ``preview``."""

from __future__ import annotations

import click

strength_option = click.option(
    "--strength",
    type=click.FloatRange(0.0, 1.0),
    default=1.0,
    show_default=True,
    help="Amount of dehazing, 0-1: the dehazing map y = a*x + b is applied as 1 + S*(a - 1) and S*b "
    "(0 returns the input, 1 the model's full result). Costs nothing; in preview, - and + (or the page's "
    "slider) change it live.",
)
