"""``streamdehaze models``: registered models and the weight files found."""

from __future__ import annotations

import click
from rich.table import Table

from .common import console


@click.command("models")
@click.option("--cards", is_flag=True, help="Print each weight file's card in full.")
def command(cards: bool) -> None:
    """List the registered models and the shipped weight files with their cards."""
    from ..nets.registry import MODELS, find_shipped, models_dirs, read_card
    from ..weights import sha256

    table = Table(title="models")
    for col in ("name", "description", "weights", "sha256"):
        table.add_column(col, overflow="fold")
    texts = []
    for spec in MODELS.values():
        if spec.default_weights is None:
            table.add_row(spec.name, spec.description, "none needed", "")
            continue
        path = find_shipped(spec.default_weights)
        if path is None:
            table.add_row(spec.name, spec.description, f"[yellow]{spec.default_weights} not found[/]", "")
            continue
        card = read_card(path)
        digest = sha256(path)
        status = "" if not card.get("sha256") else (" [green]ok[/]" if card["sha256"] == digest else " [red]≠ card[/]")
        table.add_row(spec.name, spec.description, str(path), digest[:16] + "…" + status)
        if card:
            texts.append(card["text"])
    console.print(table)
    console.print("weights looked for in: " + ", ".join(str(d) for d in models_dirs()))
    if cards:
        for text in texts:
            console.rule()
            console.print(text, markup=False, highlight=False)
