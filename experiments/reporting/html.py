"""The merchant report as one self-contained HTML page: no scripts, no external files.

:func:`render` lays out the figures of :func:`experiments.reporting.figures.build_figures`
with the plots of :func:`experiments.reporting.plots.make_plots` (SVG data URIs): the
verdict first, then per scenario the tables (at most six columns, intervals under each
figure), the plots and short explanations, the runs asked for (failed ones included) and
a glossary.
Every text is escaped; styles are inline in the page, fonts are the reader's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from experiments.evaluation.formatting import amount, eur, pct
from experiments.reporting.intervals import PER, est
from experiments.reporting.offpolicy import offpolicy_html


def _name(policy: str) -> str:
    """A policy name that may break after its underscores in narrow table headers."""
    return escape(policy).replace("_", "_<wbr>")


JUDGED, FAILED = ' class="judged"', ' class="failed"'

CSS = """
:root { --green:#009E73; --blue:#0072B2; --ink:#1d2330; --muted:#5b6472; --line:#dde1e7; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; color: var(--ink); margin: 0; background: #f6f7f9; line-height: 1.45; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 1.7rem; margin: 0 0 4px; }
h2 { font-size: 1.35rem; margin: 40px 0 8px; padding-top: 12px; border-top: 2px solid var(--line); }
h3 { font-size: 1.08rem; margin: 28px 0 6px; }
p, li { max-width: 78ch; }
.meta, .note { color: var(--muted); font-size: .9rem; }
.warn { border-left: 4px solid #C0392B; background: #fcf3f2; padding: 8px 12px; }
.verdict { border: 2px solid var(--green); border-radius: 10px; padding: 14px 18px;
  margin: 16px 0; background: #f1faf6; }
.verdict.less { border-color: #C0392B; background: #fcf3f2; }
.verdict.unclear { border-color: #E69F00; background: #fdf8ee; }
.verdict .headline { font-size: 1.15rem; font-weight: 600; margin: 4px 0 8px; }
.verdict .scn { text-transform: uppercase; letter-spacing: .04em; font-size: .78rem;
  color: var(--muted); }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: .92rem; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { text-align: right; font-weight: 600; color: var(--muted); font-size: .82rem;
  max-width: 150px; }
th:first-child, td:first-child { text-align: left; }
td { text-align: right; white-space: nowrap; }
th.text, td.text { text-align: left; }
td.wrap { white-space: normal; max-width: 360px; }
td.sep { text-align: left; font-weight: 600; color: var(--muted); background: #f6f7f9; }
td .v { display: block; font-variant-numeric: tabular-nums; }
td .ci { display: block; color: var(--muted); font-size: .76rem;
  font-variant-numeric: tabular-nums; }
tr.judged td:first-child { border-left: 4px solid var(--green); font-weight: 600; }
tr.rule td:first-child { border-left: 4px solid var(--blue); font-weight: 600; }
tr.failed td { background: #fcf3f2; }
.dot { display: inline-block; width: .7em; height: .7em; border-radius: 50%;
  margin-right: .4em; vertical-align: baseline; }
figure { margin: 10px 0 18px; }
.row { display: flex; flex-wrap: wrap; gap: 8px 40px; align-items: flex-start; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: .86rem; max-width: 78ch; }
details { margin: 6px 0 14px; }
summary { cursor: pointer; color: var(--blue); }
nav ul { columns: 2; padding-left: 18px; }
dl dt { font-weight: 600; margin-top: 8px; }
dl dd { margin-left: 0; color: var(--ink); max-width: 78ch; }
.status { font-weight: 600; }
.status.FAILED, .status.KILLED { color: #C0392B; }
code { font-size: .88em; background: #f0f2f5; padding: 1px 4px; border-radius: 3px; }
"""

GLOSSARY = (
    (
        "Profit per 1,000 shoppers",
        "What is left of the sales after the cost of the goods, "
        "delivery, every concession and live-agent time, for every 1,000 shoppers who come "
        "to the shop. The figure to compare policies by.",
    ),
    (
        "vs your current rule",
        "The profit difference with your current rule on the very same "
        "simulated shoppers (each shopper meets every policy), so luck cancels out.",
    ),
    (
        "95% interval",
        "The range the true figure lies in, 95 times out of 100. If the interval "
        "of a difference contains zero, the data cannot tell the two policies apart.",
    ),
    ("Shoppers who bought", "Conversion: the share of shoppers who ordered."),
    (
        "Revenue",
        "Sales at list price plus the shipping fees charged, per 1,000 shoppers; "
        "concessions are counted as costs, not as lower sales.",
    ),
    (
        "Share of the possible gain",
        "How much of the oracle's extra profit over never offering "
        "a policy captures: 0% is never offering, 100% is the oracle (out of reach by design).",
    ),
    (
        "Concessions",
        "What the concessions cost you, per 1,000 shoppers: discounts, waived "
        "shipping, express upgrades, gifts, the expected cost of vouchers, e-mails and "
        "live-agent time.",
    ),
    (
        "… to shoppers who would have bought anyway",
        "The part of the concessions spent on "
        "shoppers who, on the same journey without any offer, bought anyway: money given away.",
    ),
    (
        "Concessions not needed",
        "Of the shoppers who got a concession that cost something, the "
        "share who would have bought without it.",
    ),
    ("Live-agent chats", "Chats with a live agent per 1,000 shoppers."),
    (
        "Shoppers offered something",
        "The share of shoppers shown at least one offer (pop-up, "
        "chat or e-mail): how many you interrupt.",
    ),
    ("Offers per shopper", "Average number of offers each shopper saw."),
    ("Left annoyed", "The share of shoppers who left because of too many interruptions."),
    ("Withdrew consent", "The share of shoppers who unsubscribed after an e-mail."),
    (
        "Oracle",
        "A cheat that sees each shopper's hidden willingness to buy and picks the best "
        "plan for each. It cannot be deployed: it shows how much is left to gain.",
    ),
    (
        "Trained agent",
        "A policy learned by trial and error on simulated shoppers "
        "(reinforcement learning): it decides at each step whether to offer something, and what.",
    ),
)


def _cell(i: dict[str, Any] | None, unit: str) -> str:
    """An estimate over its interval, formatted for ``unit``."""
    if i is None or est(i) is None:
        return '<td><span class="v">n/a</span></td>'
    low, high = i.get("low"), i.get("high")
    e = est(i)
    if unit in ("eur", "eur_diff"):
        signed = unit == "eur_diff"
        v, lo, hi = eur(e, signed), eur(low, signed), eur(high, signed)
    elif unit == "share":
        v, lo, hi = pct(e), pct(low), pct(high)
    elif unit == "count":
        v, lo, hi = (amount(x) if x is not None else "n/a" for x in (e, low, high))
    else:
        v, lo, hi = (f"{x:.2f}" if x is not None else "n/a" for x in (e, low, high))
    exact = low is None or high is None or lo == hi  # no spread, or none at this rounding
    ci = "" if exact else f'<span class="ci">{escape(lo)} to {escape(hi)}</span>'
    return f'<td><span class="v">{escape(v)}</span>{ci}</td>'


def _row_class(policy: str, scn: dict[str, Any]) -> str:
    v = scn["verdict"]
    if policy == v["policy"]:
        return ' class="judged"'
    return ' class="rule"' if policy == v["current_rule"] else ""


def _kpi_table(table: dict[str, Any], scn: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    head = "".join(f"<th>{escape(c['label'])}</th>" for c in table["columns"])
    body = []
    for row in rows:
        cells = "".join(
            _cell(value, col["unit"])
            for value, col in zip(row["cells"], table["columns"], strict=True)
        )
        body.append(
            f"<tr{_row_class(row['policy'], scn)}><td>{escape(row['policy'])}</td>{cells}</tr>"
        )
    return f"<table><tr><th>Policy</th>{head}</tr>{''.join(body)}</table>"


def _kpi_section(key: str, scn: dict[str, Any], explain: str) -> str:
    table = scn[key]
    main = [r for r in table["rows"] if r["key"]]
    rest = [r for r in table["rows"] if not r["key"]]
    html = [
        f"<h3>{escape(table['title'])}</h3>",
        f'<p class="note">{escape(table["note"])} {escape(explain)}</p>',
        _kpi_table(table, scn, main),
    ]
    if rest:
        html.append(
            f"<details><summary>All {len(table['rows'])} policies evaluated</summary>"
            f"{_kpi_table(table, scn, table['rows'])}</details>"
        )
    return "".join(html)


def _figure(plots: dict[str, str], key: str, alt: str, caption: str = "") -> str:
    if key not in plots:
        return ""
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{plots[key]}" alt="{escape(alt)}">{cap}</figure>'


def _verdict_box(scn: dict[str, Any]) -> str:
    v = scn["verdict"]
    details = "".join(f"<p>{escape(d)}</p>" for d in v["details"])
    return (
        f'<div class="verdict {escape(v["significance"])}">'
        f'<div class="scn">Scenario {escape(scn["scenario"])}'
        f"{' — ' + escape(scn['description']) if scn['description'] else ''}</div>"
        f'<p class="headline">{escape(v["headline"])}</p>{details}'
        f'<p class="note">Your current rule: <b>{escape(v["current_rule"])}</b> — '
        f"{escape(v['current_rule_why'])}. Judged: <b>{escape(v['policy'])}</b> — "
        f"{escape(v['policy_why'])}. Measured on {scn['n_shoppers']:,} simulated shoppers, the "
        "same ones for every policy.</p></div>"
    )


def _kinds(scn: dict[str, Any], plots: dict[str, str]) -> str:
    kinds = scn["kinds"]
    if not kinds["rows"]:
        return "<p>No policy shown here gave any concession.</p>"
    head = "".join(f"<th>{_name(p)}</th>" for p in kinds["policies"])
    rows = "".join(
        f"<tr><td>{escape(r['label'])}</td>{''.join(_cell(c, 'eur') for c in r['cells'])}</tr>"
        for r in kinds["rows"]
    )
    return (
        "<h3>What the concessions are</h3>"
        f'<p class="note">Concession cost by kind, euros {PER}.</p>'
        + _figure(plots, f"{scn['scenario']}/kinds", "Concessions by kind")
        + f"<table><tr><th>Kind</th>{head}</tr>{rows}</table>"
    )


def _waterfall(scn: dict[str, Any], plots: dict[str, str]) -> str:
    falls = scn["waterfall"]
    names = list(falls)
    labels = list(dict.fromkeys(s["label"] for w in falls.values() for s in w))
    values = {n: {s["label"]: s["value"] for s in falls[n]} for n in names}
    rows = "".join(
        f"<tr><td>{escape(label)}</td>"
        + "".join(
            f'<td><span class="v">{escape(eur(values[n].get(label)))}</span></td>' for n in names
        )
        + "</tr>"
        for label in labels
    )
    rest = any(s.get("rest") for w in falls.values() for s in w)
    note = (
        " Cost of goods and delivery are shown together, as revenue minus concessions minus "
        "profit: this evaluation does not record them apart."
        if rest
        else ""
    )
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    return (
        "<h3>Where the margin goes</h3>"
        f'<p class="note">From revenue to profit, euros {PER}: each bar takes away a cost.'
        f"{escape(note)}</p>"
        + _figure(plots, f"{scn['scenario']}/waterfall", "Margin waterfall")
        + f"<details><summary>The same figures as a table</summary><table><tr><th>Line</th>"
        f"{head}</tr>{rows}</table></details>"
    )


def _segments(scn: dict[str, Any], plots: dict[str, str]) -> str:
    seg = scn["segments"]
    if not seg["rows"]:
        return ""
    policies = seg["policies"]
    top = "".join(
        f'<th colspan="{len(policies)}" style="text-align:center">{escape(m["label"])}</th>'
        for m in seg["metrics"]
    )
    sub = "".join(f"<th>{_name(p)}</th>" for _ in seg["metrics"] for p in policies)
    width = 1 + len(policies) * len(seg["metrics"])
    rows = []
    for i, r in enumerate(seg["rows"]):
        group = r.get("group", "segment")
        if i and group != seg["rows"][i - 1].get("group", "segment"):
            rows.append(f'<tr><td colspan="{width}" class="sep">By tracking consent</td></tr>')
        rows.append(
            f"<tr><td>{escape(r['segment'].replace('_', ' '))}"
            f'<span class="ci">{r["shoppers"]:,} shoppers</span></td>'
            + "".join(
                _cell(r["cells"][m["key"]][p], m["unit"]) for m in seg["metrics"] for p in policies
            )
            + "</tr>"
        )
    return (
        "<h3>Who gets offers</h3>"
        '<p class="note">The simulated shoppers come in types (segments), each with its own '
        "taste for deals. Who is offered something, what it costs, and what it brings back.</p>"
        + _figure(plots, f"{scn['scenario']}/segments", "Offers by shopper segment")
        + f"<table><tr><th rowspan=2>Shoppers</th>{top}</tr><tr>{sub}</tr>{''.join(rows)}</table>"
    )


def _timing(scn: dict[str, Any], plots: dict[str, str]) -> str:
    timing = scn["timing"]
    if not timing:
        return (
            "<h3>When offers are made</h3><p>Not recorded in this evaluation: it does not "
            "store when each shopper got a first offer (first_offer_visit / first_offer_step). "
            "Newer evaluations do; see the note at the end.</p>"
        )
    policies = timing["policies"]
    head = "".join(f"<th>{escape(p)}</th>" for p in policies)
    tables = []
    for key, title in (("first_offer_visit", "Visit"), ("first_offer_step", "Step")):
        rows = "".join(
            f"<tr><td>{escape(b['bin'])}</td>"
            + "".join(_cell(b["cells"][p], "share") for p in policies)
            + "</tr>"
            for b in timing[key]
        )
        tables.append(f"<table><tr><th>{title}</th>{head}</tr>{rows}</table>")
    return (
        "<h3>When offers are made</h3>"
        '<p class="note">Share of all shoppers whose first offer came on a given visit, and at '
        "a given step of their journey (page views, cart edits, checkout steps).</p>"
        + _figure(plots, f"{scn['scenario']}/timing", "When the first offer comes")
        + f'<div class="row">{"".join(tables)}</div>'
    )


def _privacy(scn: dict[str, Any], plots: dict[str, str]) -> str:
    privacy = scn["privacy"]
    if not privacy:
        return ""
    share = privacy["consent_share"]
    rows = "".join(
        f"<tr{_row_class(r['policy'], scn)}><td>{escape(r['policy'])}</td>"
        + _cell(r["consent"], "eur")
        + _cell(r["no_consent"], "eur")
        + _cell(r["gap"], "eur_diff")
        + _cell(r["gain_consent"], "eur_diff")
        + _cell(r["gain_no_consent"], "eur_diff")
        + "</tr>"
        for r in privacy["rows"]
    )
    return (
        "<h3>What privacy costs</h3>"
        f'<p class="note">{pct(share)} of shoppers accepted tracking. Without it, on-site '
        "offers cannot react to a shopper about to leave, and e-mails cannot be sent. "
        "The gap mixes two things: what tracking lets you do, and who refuses it (privacy-minded "
        "shoppers buy differently); the gains over never offering compare like with like.</p>"
        + _figure(plots, f"{scn['scenario']}/privacy", "Profit by tracking consent")
        + "<table><tr><th>Policy</th><th>Profit, accepted tracking</th>"
        "<th>Profit, refused tracking</th><th>Gap</th><th>Gain over never, accepted</th>"
        f"<th>Gain over never, refused</th></tr>{rows}</table>"
        f'<p class="note">Euros {PER} of each group.</p>'
    )


def _runs_of_scenario(scn: dict[str, Any]) -> str:
    runs = scn["runs"]
    if len(runs) < 2:
        return ""
    rows = "".join(
        f"<tr{JUDGED if i == 0 else ''}><td>{escape(r['label'])}"
        f'<span class="ci">{escape(r["policy"])}</span></td>'
        + _cell(r["vs_rule"], "eur_diff")
        + _cell(r["profit_per_1000"], "eur")
        + _cell(r["profit_captured"], "share")
        + _cell(r["offer_rate"], "share")
        + "</tr>"
        for i, r in enumerate(runs)
    )
    return (
        "<h3>Every evaluated run of this scenario</h3>"
        '<p class="note">The verdict above is the run that earns most over your current rule; '
        "picking the best of several runs flatters it a little, so check the others agree.</p>"
        "<table><tr><th>Run</th><th>vs your current rule</th><th>Profit</th>"
        f"<th>Share of the possible gain</th><th>Shoppers offered something</th></tr>{rows}</table>"
    )


def _scenario(scn: dict[str, Any], plots: dict[str, str]) -> str:
    name = scn["scenario"]
    policies = "".join(
        f"<li><b>{escape(p)}</b>: {escape(d)}</li>" for p, d in scn["policies"].items()
    )
    curves = _figure(
        plots,
        f"{name}/curves",
        "Learning curves",
        "Each point is the trained agent tested on the same fixed test shoppers during "
        "training. A curve still rising at the end means more training may pay; the dashed "
        "line is the best baseline on those shoppers. Dotted lines: runs that did not finish.",
    )
    parts = [
        f'<h2 id="scn-{escape(name)}">Scenario {escape(name)}</h2>',
        f"<p>{escape(scn['description'])}</p>" if scn["description"] else "",
        f'<p class="meta">{scn["n_shoppers"]:,} simulated shoppers (seed {scn["seed"]}), every '
        f"policy on the same ones; {scn['confidence']}% intervals under each figure. Source: "
        f"{escape(scn['source'])}.</p>",
        f"<details><summary>The policies compared</summary><ul>{policies}</ul></details>",
        _figure(plots, f"{name}/profit", "Profit per 1,000 shoppers"),
        _kpi_section("profit", scn, ""),
        _kpi_section("given", scn, ""),
        _kinds(scn, plots),
        _waterfall(scn, plots),
        _kpi_section("contact", scn, ""),
        _timing(scn, plots),
        _segments(scn, plots),
        _privacy(scn, plots),
        "<h3>Headroom: the oracle's bound</h3>",
        f"<p>{escape(scn['headroom']['sentence'])}</p>",
        _figure(plots, f"{name}/headroom", "Headroom up to the oracle"),
        "<h3>Learning curves</h3>" if curves else "",
        curves,
        _runs_of_scenario(scn),
    ]
    return "".join(parts)


def _runs(figures: dict[str, Any]) -> str:
    rows = []
    for r in figures["runs"]:
        texts = (
            r["label"],
            r["scenario"] or "",
            r["agent"] or "",
            r["seed"] or "",
            (r["run_id"] or "")[:12],
        )
        cells = "".join(f'<td class="text">{escape(t)}</td>' for t in texts)
        status = escape(r["status"])
        rows.append(
            f"<tr{'' if r['has_evaluation'] else FAILED}>{cells}"
            f'<td class="text"><span class="status {status}">{status}</span></td>'
            f'<td class="text wrap">{escape(r["note"])}</td></tr>'
        )
    failed = sum(1 for r in figures["runs"] if not r["has_evaluation"])
    summary = (
        f"{len(figures['runs'])} run(s) asked for; {failed} without an evaluation "
        "(in red: listed, not in the figures)."
        if failed
        else f"{len(figures['runs'])} run(s) asked for, all evaluated."
    )
    head = "".join(
        f'<th class="text">{h}</th>'
        for h in ("Run", "Scenario", "Agent", "Seed", "Run id", "Status", "Note")
    )
    return (
        '<h2 id="runs">Runs in this report</h2>'
        f"<p>{escape(summary)}</p><table><tr>{head}</tr>{''.join(rows)}</table>"
    )


def _glossary(figures: dict[str, Any]) -> str:
    items = "".join(f"<dt>{escape(t)}</dt><dd>{escape(d)}</dd>" for t, d in GLOSSARY)
    missing = "".join(f"<li>{escape(m)}</li>" for m in figures["missing"])
    note = f"<h3>Not in this report</h3><ul>{missing}</ul>" if missing else ""
    return f'<h2 id="glossary">How to read this report</h2><dl>{items}</dl>{note}'


def _missing_runs(figures: dict[str, Any]) -> str:
    """A warning above the verdict when runs asked for have no evaluation."""
    missing = [r for r in figures["runs"] if not r["has_evaluation"]]
    if not missing:
        return ""
    statuses = ", ".join(sorted({r["status"] for r in missing}))
    return (
        f'<p class="warn">{len(missing)} of {len(figures["runs"])} runs asked for have no '
        f"evaluation ({escape(statuses)}): they are listed under "
        '<a href="#runs">Runs in this report</a>, not in the figures.</p>'
    )


def render(figures: dict[str, Any], plots: dict[str, str]) -> str:
    """The whole report page."""
    scenarios = figures["scenarios"]
    toc = "".join(
        f'<li><a href="#scn-{escape(s["scenario"])}">Scenario {escape(s["scenario"])}</a></li>'
        for s in scenarios
    )
    source = escape(figures["selection"])
    store = f" in {escape(figures['tracking_uri'])}" if figures.get("tracking_uri") else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(figures['title'])}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{escape(figures['title'])}</h1>"
        f'<p class="meta">Made {escape(figures["generated"])} from {source}{store}. All '
        f"money in euros {PER}; shoppers are simulated.</p>"
        + _missing_runs(figures)
        + '<h2 id="verdict" style="border:0;margin-top:12px">Verdict</h2>'
        + "".join(_verdict_box(s) for s in scenarios)
        + "<nav><ul>"
        + toc
        + ('<li><a href="#on-your-logs">On your logs</a></li>' if figures.get("offpolicy") else "")
        + '<li><a href="#runs">Runs in this report</a></li>'
        '<li><a href="#glossary">How to read this report</a></li></ul></nav>'
        + "".join(_scenario(s, plots) for s in scenarios)
        + "".join(
            offpolicy_html(section, plots.get(f"offpolicy/{i}"))
            for i, section in enumerate(figures.get("offpolicy", []))
        )
        + _runs(figures)
        + _glossary(figures)
        + "</main></body></html>\n"
    )
