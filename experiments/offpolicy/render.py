"""An off-policy evaluation on screen: rich tables, the recommendation, warnings in words."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from experiments.evaluation.formatting import amount, eur_interval, interval_text, pct_interval
from experiments.offpolicy.interference import PLAIN_ASSUMES, corrected_assumes
from experiments.offpolicy.result import (
    CONVERSION_KEY,
    PROFIT_KEY,
    SPEND_KEY,
    Estimate,
    OPEResult,
    Trust,
)

_STYLE = {Trust.TRUSTED: "green", Trust.CAUTION: "yellow"}


def _eur(e: Estimate | None) -> str:
    return eur_interval(None if e is None else e.to_json(), bare_point=False)


def _pct(e: Estimate | None) -> str:
    return pct_interval(None if e is None else e.to_json(), bare_point=False)


def _signed(e: Estimate) -> str:
    return interval_text(e.to_json(), "{:+,.0f}", bare_point=False)


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("policy", no_wrap=True)
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    return table


def render(result: OPEResult, console: Console) -> None:
    """Print an :func:`experiments.offpolicy.evaluate_offpolicy` result: the recommended
    estimates beside what the logger earned, every estimator's profit, the diagnostics,
    why each estimator was recommended, and the warnings."""
    log, results = result.log, result.results
    pct = round(100 * result.settings.confidence)
    logger = log.logger or "unknown logger"
    head = (
        f"{amount(log.journeys)} journeys, {amount(log.decisions)} decisions"
        f"{' (single-decision)' if log.single_decision else ''}, logged by {logger}, "
        f"propensities {log.propensities}; {pct}% intervals"
    )
    main = _table(
        f"Off-policy estimates — {head}",
        ["profit / 1,000 journeys", "conversion", "spend / 1,000", "estimator", "trust"],
    )
    logged = result.logged
    main.add_row(
        f"{logger} (as logged)",
        _eur(logged.get(PROFIT_KEY)),
        _pct(logged.get(CONVERSION_KEY)),
        _eur(logged.get(SPEND_KEY)),
        "observed",
        "",
    )
    for name in result.policies:
        r = results[name]
        rec = r.recommended.outputs
        main.add_row(
            name,
            _eur(rec.get(PROFIT_KEY)),
            _pct(rec.get(CONVERSION_KEY)),
            _eur(rec.get(SPEND_KEY)) + (" exact" if SPEND_KEY in r.exact else ""),
            r.recommended.estimator,
            f"[{_STYLE.get(r.trust, 'red')}]{r.trust.value}[/]",
        )
    console.print(main)

    names = list(next(iter(results.values())).estimators) if results else []
    by = _table("Profit per 1,000 journeys by estimator", names)
    for name in result.policies:
        est = results[name].estimators
        by.add_row(name, *(_eur(est[e].get(PROFIT_KEY)) for e in names))
    console.print(by)

    diag = _table(
        "Diagnostics",
        [
            "effective journeys",
            "share",
            "per decision",
            "marginalised",
            "largest weight",
            "journeys agreeing",
            "no support (decisions)",
            "value model R²",
        ],
    )
    for name in result.policies:
        d = results[name].diagnostics
        r2 = results[name].value_model_r2.get("profit")
        diag.add_row(
            name,
            amount(d.ess),
            f"{100 * d.ess_share:.2f}%",
            "n/a" if d.step_ess is None else amount(d.step_ess),
            "n/a" if d.marginal_ess is None else amount(d.marginal_ess),
            f"{100 * d.max_weight_share:.2f}%",
            f"{100 * d.matched_journeys:.1f}%",
            f"{100 * d.unsupported_decisions:.2f}%",
            "n/a" if r2 is None else f"{r2:.2f}",
        )
    console.print(diag)
    _render_interference(result, console)
    for name in result.policies:
        chosen = results[name].recommended
        console.print(f"[bold]{name}[/]: recommended {chosen.estimator}: {chosen.why}")
        for key, why in results[name].exact.items():
            console.print(f"[bold]{name}[/]: {key.replace('_', ' ')} is {why}")
    for text in result.warnings:
        console.print(f"[bold red]warning:[/] {text}")
    for name in result.policies:
        for text in results[name].warnings:
            console.print(f"[yellow]warning:[/] {text}")


def _render_interference(result: OPEResult, console: Console) -> None:
    """The plain and the corrected profit side by side, each marked for what it assumes,
    the simulated runs behind the correction, and its cause in words."""
    measured = {n: r.interference for n, r in result.results.items() if r.interference}
    if not measured:
        return
    first = next(iter(measured.values())).measured
    table = _table(
        f"What the log cannot show: shoppers share state in scenario {first.scenario!r} "
        "(profit / 1,000 journeys)",
        ["plain", "correction", "corrected", "alone (simulated)", "among logger"],
    )
    for name in result.policies:
        s = measured.get(name)
        if s is None:
            continue
        table.add_row(
            name,
            _eur(s.plain),
            _signed(s.applied),
            f"[bold]{_eur(s.corrected)}[/]",
            _eur(s.measured.alone),
            _eur(s.measured.among_logger),
        )
    console.print(table)
    console.print(
        f"  plain assumes {PLAIN_ASSUMES}; corrected assumes {corrected_assumes(first.scenario)}"
    )
    console.print(
        f"  simulated: {first.replicates} paired runs of {amount(first.n_shoppers)} shoppers, the "
        f"policy serving {first.share:.0%} of them among {first.logger} ({first.exploration}); "
        "alone and among on the same shoppers"
    )
    for name in result.policies:
        s = measured.get(name)
        if s is not None:
            console.print(f"[bold]{name}[/]: shared state: {s.cause}")
