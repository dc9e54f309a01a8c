"""The paired evaluation as console tables: money, sales, contact, spend by kind, groups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from experiments.evaluation.formatting import eur_interval as _eur
from experiments.evaluation.formatting import num_interval as _num
from experiments.evaluation.formatting import pct_interval as _pct


def _table(title: str, columns: Sequence[str]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("policy", no_wrap=True)
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    return table


def render(result: dict[str, Any], console: Console) -> None:
    """The evaluation as rich tables: money, contact, spend by kind, segments, consent."""
    pct = round(100 * result["confidence"])
    head = (
        f"{result['scenario']}: {result['n_shoppers']:,} shoppers, seed {result['seed']}, "
        f"{pct}% intervals, EUR per 1,000 shoppers"
    )
    overall = result["overall"]
    money = _table(
        f"Profit — {head}",
        ("profit", "vs never (paired)", f"vs best: {result['best_baseline']}", "regret vs oracle"),
    )
    money.add_column("captured", justify="right", no_wrap=True)
    for name, k in overall.items():
        money.add_row(
            name,
            _eur(k["profit_per_1000"]),
            _eur(k["diff_vs_never_per_1000"]),
            _eur(k["diff_vs_best_per_1000"]),
            _eur(k["regret_per_1000"]),
            _pct(k["profit_captured"]),
        )
    console.print(money)

    sales = _table(
        "Sales and concessions", ("conversion", "revenue", "spend", "give-away rate", "given away")
    )
    for name, k in overall.items():
        sales.add_row(
            name,
            _pct(k["conversion"]),
            _eur(k["revenue_per_1000"]),
            _eur(k["spend_per_1000"]),
            _pct(k["giveaway_rate"]),
            _eur(k["giveaway_spend_per_1000"]),
        )
    console.print(sales)

    contact = _table(
        "Contact and service",
        (
            "offer rate",
            "offers/shopper",
            "harassment exits",
            "opt-outs",
            "agent sessions",
            "agents busy",
        ),
    )
    for name, k in overall.items():
        contact.add_row(
            name,
            _pct(k["offer_rate"]),
            _num(k["interruptions_per_shopper"]),
            _pct(k["harassment_exits"]),
            _pct(k["opt_outs"]),
            _eur(k["agent_sessions_per_1000"]),
            _pct(k["agent_utilisation"]),
        )
    console.print(contact)

    kinds = list(next(iter(overall.values()))["spend_by_kind_per_1000"])
    spend = _table("Concession spend by kind", [kind.replace("_", " ") for kind in kinds])
    for name, k in overall.items():
        spend.add_row(name, *(_eur(k["spend_by_kind_per_1000"][kind]) for kind in kinds))
    console.print(spend)

    for title, groups in (("segment", result["by_segment"]), ("consent", result["by_consent"])):
        table = _table(
            f"Profit by {title}, and vs never (paired)",
            [f"{g} ({next(iter(k.values()))['shoppers']:,})" for g, k in groups.items()],
        )
        for name in result["policies"]:
            table.add_row(
                name,
                *(
                    f"{_eur(kpis[name]['profit_per_1000'])}\n"
                    f"{_eur(kpis[name]['diff_vs_never_per_1000'])}"
                    for kpis in groups.values()
                ),
            )
        console.print(table)
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result["seconds"].items())
    console.print(f"wall time: {timing}")
