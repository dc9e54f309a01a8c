"""An off-policy evaluation on screen: rich tables, the recommendation, warnings in words."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from experiments.offpolicy.diagnostics import CAUTION, TRUSTED

_STYLE = {TRUSTED: "green", CAUTION: "yellow"}


def _fmt(i: Mapping[str, Any] | None, spec: str, scale: float = 1.0) -> str:
    if not i or i.get("estimate") is None:
        return "n/a"
    text = spec.format(i["estimate"] * scale)
    if i.get("low") is None or i.get("high") is None:
        return text
    return f"{text} [{spec.format(i['low'] * scale)}, {spec.format(i['high'] * scale)}]"


def _eur(i: Mapping[str, Any] | None) -> str:
    return _fmt(i, "{:,.0f}")


def _pct(i: Mapping[str, Any] | None) -> str:
    return _fmt(i, "{:.1f}%", 100.0)


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("policy", no_wrap=True)
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    return table


def render(result: Mapping[str, Any], console: Console) -> None:
    """Print an :func:`experiments.offpolicy.evaluate_offpolicy` result."""
    log, results = result["log"], result["results"]
    pct = round(100 * result["settings"]["confidence"])
    logger = log["logger"] or "unknown logger"
    head = (
        f"{log['journeys']:,} journeys, {log['decisions']:,} decisions"
        f"{' (single-decision)' if log['single_decision'] else ''}, logged by {logger}, "
        f"propensities {log['propensities']}; {pct}% intervals"
    )
    main = _table(
        f"Off-policy estimates — {head}",
        ["profit / 1,000 journeys", "conversion", "spend / 1,000", "estimator", "trust"],
    )
    logged = result["logged"]
    main.add_row(
        f"{logger} (as logged)",
        _eur(logged.get("profit_per_1000")),
        _pct(logged.get("conversion")),
        _eur(logged.get("spend_per_1000")),
        "observed",
        "",
    )
    for name in result["policies"]:
        r = results[name]
        rec = r["recommended"]
        trust = r["trust"]
        main.add_row(
            name,
            _eur(rec.get("profit_per_1000")),
            _pct(rec.get("conversion")),
            _eur(rec.get("spend_per_1000")),
            rec["estimator"],
            f"[{_STYLE.get(trust, 'red')}]{trust}[/]",
        )
    console.print(main)

    names = list(next(iter(results.values()))["estimators"]) if results else []
    by = _table("Profit per 1,000 journeys by estimator", names)
    for name in result["policies"]:
        est = results[name]["estimators"]
        by.add_row(name, *(_eur(est[e].get("profit_per_1000")) for e in names))
    console.print(by)

    diag = _table(
        "Diagnostics",
        [
            "effective journeys",
            "share",
            "largest weight",
            "journeys agreeing",
            "no support (decisions)",
            "value model R²",
        ],
    )
    for name in result["policies"]:
        d = results[name]["diagnostics"]
        r2 = results[name]["value_model_r2"].get("profit")
        diag.add_row(
            name,
            f"{d['ess']:,.0f}",
            f"{100 * d['ess_share']:.2f}%",
            f"{100 * d['max_weight_share']:.2f}%",
            f"{100 * d['matched_journeys']:.1f}%",
            f"{100 * d['unsupported_decisions']:.2f}%",
            "n/a" if r2 is None else f"{r2:.2f}",
        )
    console.print(diag)
    for name in result["policies"]:
        rec = results[name]["recommended"]
        console.print(f"[bold]{name}[/]: recommended {rec['estimator']}: {rec['why']}")
    for text in result["warnings"]:
        console.print(f"[bold red]warning:[/] {text}")
    for name in result["policies"]:
        for text in results[name]["warnings"]:
            console.print(f"[yellow]warning:[/] {text}")
