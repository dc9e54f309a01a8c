"""The report's "On your logs" section: off-policy estimates beside the simulated figures.

Given the result of an off-policy evaluation (``concede ope``, an
:class:`experiments.offpolicy.result.OPEResult`, or the JSON file it wrote), the
section shows, per
policy, what it would have earned on the shop's own logged journeys (the recommended
estimator's profit per 1,000 journeys, conversion and concession spend, with their
intervals), beside what the paired simulator evaluation of the same scenario says of the
same policy when the report has one; what the logging policy itself earned; and, in plain
words, how far each figure can be trusted (effective sample size, the largest weight's
share, decisions the logger could not have taken) with the evaluation's warnings. Where
the evaluation measured what shoppers sharing state does to the figures (a scenario with a
campaign budget, shoppers learning to wait, a live-agent desk;
:mod:`experiments.offpolicy.interference`), a table shows each policy's figure beside the
corrected one, each with what it assumes, and what carries the difference.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from experiments.evaluation.formatting import eur, pct
from experiments.offpolicy.result import OUTPUTS, OPEResult, OPEResultError, Trust
from experiments.reporting.errors import ReportError
from experiments.reporting.intervals import est
from experiments.reporting.plots import BLUE, EUROS, GREEN, hbars, new_figure, to_data_uri
from experiments.reporting.sources import Source

Interval = dict[str, Any]
TRUST_WORDS = {
    Trust.TRUSTED: "can be trusted: the logs cover what this policy does",
    Trust.CAUTION: "read with caution: few logged journeys look like what this policy does",
    Trust.UNTRUSTED: "not trustworthy: the logs do not cover what this policy does",
}


def read_offpolicy(path: str | Path) -> OPEResult:
    """An off-policy evaluation's result from its JSON: the file ``experiments.ope``
    wrote (``output=``), or its printed output, whose last line is the JSON.

    Raises:
        ReportError: no such file, not JSON, or not an off-policy evaluation (the
            message names the key that does not match).
    """
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"no off-policy evaluation at {path}: check the path given to --ope")
    text = path.read_text(encoding="utf-8").strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = json.loads(text.splitlines()[-1] if text else "")
        except (json.JSONDecodeError, IndexError) as err:
            raise ReportError(f"{path} is not the JSON of `concede ope` ({err})") from None
    return offpolicy_result(data, str(path))


def offpolicy_result(data: OPEResult | Mapping[str, Any], source: str = "") -> OPEResult:
    """``data`` as an :class:`~experiments.offpolicy.result.OPEResult` (a result, or its
    JSON from ``source``).

    Raises:
        ReportError: ``data`` is not an off-policy evaluation's result.
    """
    if isinstance(data, OPEResult):
        return data
    try:
        return OPEResult.from_json(data)
    except OPEResultError as err:
        raise ReportError(
            f"{source or 'the data given'} is not an off-policy evaluation of `concede ope`: {err}"
        ) from None


def _simulated(sources: Sequence[Source], scenario: str | None) -> dict[str, dict[str, Any]]:
    """The simulator's overall KPIs per policy for ``scenario``, from the report's
    evaluations (the first evaluation of that scenario holding each policy)."""
    found: dict[str, dict[str, Any]] = {}
    for source in sources:
        ev = source.evaluation
        if ev is None or scenario is None or ev.get("scenario") != scenario:
            continue
        for policy, kpis in (ev.get("overall") or {}).items():
            found.setdefault(policy, kpis)
    return found


def _as_json(estimates: Mapping[str, Any]) -> dict[str, Interval | None]:
    return {k: None if k not in estimates else estimates[k].to_json() for k in OUTPUTS}


def offpolicy_figures(ope: OPEResult, sources: Sequence[Source]) -> dict[str, Any]:
    """The section's figures, JSON-ready: what was logged, and one row per policy."""
    log = ope.log
    simulated = _simulated(sources, log.scenario)
    rows = []
    for policy in ope.policies:
        result = ope.results[policy]
        chosen = result.recommended
        sim = simulated.get(policy, {})
        rows.append(
            {
                "policy": policy,
                "estimator": chosen.estimator,
                "why": chosen.why,
                "on_logs": _as_json(chosen.outputs),
                "simulated": {k: sim.get(k) for k in OUTPUTS} if sim else None,
                "trust": result.trust.value,
                "diagnostics": result.diagnostics.to_json(),
                "warnings": list(result.warnings),
                "exact": dict(result.exact),
                "interference": None
                if result.interference is None
                else result.interference.to_json(),
            }
        )
    return {
        "journeys": log.journeys,
        "decisions": log.decisions,
        "single_decision": log.single_decision,
        "logger": log.logger,
        "scenario": log.scenario,
        "propensities": log.propensities,
        "files": list(log.files),
        "logged": _as_json(ope.logged),
        "rows": rows,
        "warnings": list(ope.warnings),
        "has_simulated": any(r["simulated"] for r in rows),
    }


def offpolicy_plot(section: Mapping[str, Any]) -> str | None:
    """Profit per 1,000 journeys on the logs beside the simulated figure, per policy."""
    rows = section["rows"]
    if not rows:
        return None
    labels = [r["policy"] for r in rows]
    fig, (ax,) = new_figure(7.5, 0.55 * len(rows) + 1.4)
    both = section["has_simulated"]
    height = 0.38 if both else 0.7
    hbars(
        ax,
        labels,
        [r["on_logs"]["profit_per_1000"] for r in rows],
        [GREEN] * len(rows),
        EUROS,
        offset=-height / 2 if both else 0.0,
        height=height,
        label="on your logs",
    )
    if both:
        hbars(
            ax,
            labels,
            [(r["simulated"] or {}).get("profit_per_1000") for r in rows],
            [BLUE] * len(rows),
            EUROS,
            offset=height / 2,
            height=height,
            label="simulated",
        )
        fig.legend(loc="outside lower center", ncols=2, frameon=False)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(EUROS)
    ax.axvline(0, color="#333333", lw=0.8)
    ax.set_title("Profit per 1,000 journeys, with 95% intervals")
    return to_data_uri(fig)


def _with_interval(i: Interval | None, fmt: Callable[[float | None], str]) -> str:
    """An estimate and, below it, its interval, in ``fmt``; ``n/a`` without an estimate."""
    if i is None or est(i) is None:
        return "n/a"
    if i.get("low") is None or i.get("high") is None:
        return escape(fmt(est(i)))
    low, high = escape(fmt(i["low"])), escape(fmt(i["high"]))
    return f'{escape(fmt(est(i)))} <span class="ci">{low} to {high}</span>'


def _inline(i: Interval | None, fmt: Callable[[float | None], str]) -> str:
    """An estimate with its interval in parentheses, for running text."""
    if i is None or est(i) is None:
        return "n/a"
    if i.get("low") is None or i.get("high") is None:
        return escape(fmt(est(i)))
    return escape(f"{fmt(est(i))} (95% interval {fmt(i['low'])} to {fmt(i['high'])})")


def _money(i: Interval | None) -> str:
    return _with_interval(i, eur)


def _share(i: Interval | None) -> str:
    return _with_interval(i, pct)


def _exact(row: Mapping[str, Any], key: str) -> str:
    """A note under a figure the policy fixes by construction (not estimated)."""
    why = row.get("exact", {}).get(key)
    return "" if why is None else f'<br><span class="ci">{escape(why)}</span>'


def _plain_words(row: Mapping[str, Any]) -> str:
    d = row["diagnostics"]
    parts = [TRUST_WORDS.get(row["trust"], str(row["trust"]))]
    ess = d.get("ess")
    if ess is not None:
        parts.append(f"the weighted log is worth about {ess:,.0f} journeys")
    step, marginal = d.get("step_ess"), d.get("marginal_ess")
    if step is not None and marginal is not None:
        parts.append(
            f"per decision about {step:,.0f} journeys, {marginal:,.0f} with the marginalised "
            "weights (which pool histories that reach the same state)"
        )
    share = d.get("max_weight_share")
    if share is not None:
        parts.append(f"the most influential journey carries {pct(share)} of the weight")
    unsupported = d.get("unsupported_decisions")
    if unsupported:
        parts.append(f"{pct(unsupported)} of its decisions are ones the logger never takes")
    detail = "; ".join([*parts[1:], f"estimator: {row['estimator']}"])
    return f"<b>{escape(parts[0])}</b><br>{escape(detail)}"


def offpolicy_html(section: Mapping[str, Any], plot: str | None) -> str:
    """The section as HTML (no scripts; the plot an embedded image)."""
    kind = "one decision per customer" if section["single_decision"] else "decision logs"
    propensities = {
        "logged": "the probabilities the logging policy gave its actions were logged",
        "estimated": "the logs had no probabilities: they were estimated from the logs, "
        "which makes every figure less certain",
    }.get(str(section["propensities"]), str(section["propensities"]))
    head = (
        '<section id="on-your-logs"><h2>On your logs</h2>'
        f'<p class="note">What each policy would have earned on your own shoppers: '
        f"{section['journeys']:,} logged journeys ({kind}, {section['decisions']:,} "
        f"decisions) of the policy <b>{escape(str(section['logger']))}</b>; "
        f"{escape(propensities)}. Figures are estimated off-policy: each logged journey is "
        "weighted by how likely the policy was to decide as the logger did; the simulated "
        "column is the paired simulator evaluation of the same scenario, for comparison.</p>"
    )
    logged = section["logged"]
    head += (
        f"<p>Your logging policy earned {_inline(logged.get('profit_per_1000'), eur)} per "
        f"1,000 journeys, converting {_inline(logged.get('conversion'), pct)}.</p>"
    )
    sim_head = "<th>Simulated profit</th>" if section["has_simulated"] else ""
    body = []
    for row in section["rows"]:
        sim = ""
        if section["has_simulated"]:
            sim = f"<td>{_money((row['simulated'] or {}).get('profit_per_1000'))}</td>"
        cls = ' class="failed"' if row["trust"] == Trust.UNTRUSTED else ""
        body.append(
            f"<tr{cls}><td>{escape(row['policy'])}</td>"
            f"<td>{_money(row['on_logs']['profit_per_1000'])}</td>{sim}"
            f"<td>{_share(row['on_logs']['conversion'])}</td>"
            f"<td>{_money(row['on_logs']['spend_per_1000'])}{_exact(row, 'spend_per_1000')}</td>"
            f'<td class="text wrap">{_plain_words(row)}</td></tr>'
        )
    table = (
        "<table><tr><th>Policy</th><th>Profit on your logs</th>"
        f"{sim_head}<th>Conversion</th><th>Given away</th>"
        f'<th class="text">Can you trust it?</th></tr>{"".join(body)}</table>'
    )
    figure = f'<figure><img src="{plot}" alt="Profit on your logs"></figure>' if plot else ""
    figure += _interference_html(section["rows"])
    warnings = [*section["warnings"], *(w for r in section["rows"] for w in r["warnings"])]
    listed = "".join(f"<li>{escape(w)}</li>" for w in dict.fromkeys(warnings))
    notes = f'<h3>Warnings</h3><ul class="note">{listed}</ul>' if listed else ""
    return head + table + figure + notes + "</section>"


def _signed(i: Interval | None) -> str:
    return _with_interval(i, lambda x: eur(x, signed=True))


def _interference_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """Where shoppers share state: each policy's figure on the logs beside the one
    corrected for it, each marked for what it assumes (empty: nothing measured)."""
    measured = [(r["policy"], r["interference"]) for r in rows if r.get("interference")]
    if not measured:
        return ""
    first = measured[0][1]["measured"]
    body = "".join(
        f"<tr><td>{escape(policy)}</td><td>{_money(block['plain'])}</td>"
        f"<td>{_signed(block['applied'])}</td><td>{_money(block['corrected'])}</td>"
        f'<td class="text wrap">{escape(block["cause"])}</td></tr>'
        for policy, block in measured
    )
    return (
        "<h3>Shoppers who share state</h3>"
        f'<p class="note">In scenario <b>{escape(first["scenario"])}</b> one shopper\'s '
        "treatment changes another's (such as a shared campaign budget, shoppers learning to wait "
        "for deals, a live-agent desk), and your logged shoppers lived in the state your "
        f"logging policy <b>{escape(first['logger'])}</b> produced, not the state each "
        "policy would produce: no reweighting can see this. It was measured in the "
        f"simulator ({first['replicates']} paired runs of {first['n_shoppers']:,} shoppers, "
        "each policy alone and serving a few of the logging policy's shoppers) and added to "
        "the figure on your logs.</p>"
        "<table><tr><th>Policy</th>"
        '<th>On your logs<br><span class="ci">if shoppers do not affect one another</span></th>'
        "<th>Correction</th>"
        '<th>Corrected<br><span class="ci">if the scenario\'s shared state is your '
        "shop's</span></th>"
        f'<th class="text">How large, and why</th></tr>{body}</table>'
    )
