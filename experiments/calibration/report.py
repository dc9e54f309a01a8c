"""The fit report: one self-contained HTML page, observed against simulated for every target.

:func:`render_report` lays out a :class:`experiments.calibration.pipeline.CalibrationResult`:
what was fitted to what; each parameter with its start value, fitted value and 95%
interval; the parameters the data does not pin down, in words; then for the journeys
fitted and those held out, a plot and a table of every target, observed (with its 95%
interval) against the fitted and the starting scenario; with forecasts
(:mod:`.forecast`), what named policies would earn on the fitted scenario, with the fit's
uncertainty in the interval. Plots are matplotlib (Agg) SVGs
embedded as data URIs, so the page opens offline; every text is escaped.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
from matplotlib.figure import Figure

from experiments.calibration.forecast import Forecast
from experiments.calibration.holdout import Comparison, summary
from experiments.calibration.intervals import Interval
from experiments.calibration.log_targets import uplifts
from experiments.calibration.pipeline import CalibrationResult
from experiments.calibration.trust import CARE, DISTRUST, TRUST
from experiments.evaluation.formatting import eur, pct

BLUE, GREEN, GREY, RED = "#0072B2", "#009E73", "#8C8C8C", "#C0392B"
CSS = """
body { font-family: system-ui, sans-serif; color: #1d2330; margin: 0; background: #f6f7f9;
  line-height: 1.45; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h2 { margin-top: 36px; border-top: 2px solid #dde1e7; padding-top: 10px; }
table { border-collapse: collapse; margin: 8px 0; font-size: .9rem; }
th, td { padding: 5px 9px; border-bottom: 1px solid #dde1e7; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { color: #5b6472; font-size: .8rem; }
.meta { color: #5b6472; font-size: .9rem; }
.warn { border-left: 4px solid #C0392B; background: #fcf3f2; padding: 8px 12px; }
.ok { border-left: 4px solid #009E73; background: #f1faf6; padding: 8px 12px; }
tr.out td { color: #C0392B; }
tr.info td { color: #5b6472; }
"""


def _svg(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


def targets_plot(rows: Sequence[Comparison], title: str) -> str:
    """Observed (with its 95% interval) against simulated, fitted and start, per target."""
    rows = [r for r in rows if np.isfinite(r.observed)]
    fig = Figure(figsize=(8.5, 0.32 * len(rows) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    obs = np.array([r.observed for r in rows])
    ax.errorbar(
        obs,
        y,
        xerr=[obs - [r.low for r in rows], [r.high for r in rows] - obs],
        fmt="o",
        color="black",
        ms=4,
        capsize=2,
        label="observed, 95% interval",
    )
    ax.plot([r.simulated_start for r in rows], y, "x", color=GREY, label="start scenario")
    ax.plot([r.simulated for r in rows], y, "D", color=GREEN, ms=5, label="fitted scenario")
    ax.set_yticks(y, [r.name + ("" if r.fitted else " *") for r in rows], fontsize=8)
    ax.xaxis.set_major_formatter(lambda x, _: f"{100 * x:.0f}%")
    ax.set_title(title, loc="left", fontsize=11)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig)


def params_plot(params: Sequence[Interval]) -> str:
    """Each parameter's start and fitted value with its 95% interval."""
    fig = Figure(figsize=(8.5, 0.4 * len(params) + 1.0))
    ax = fig.subplots()
    y = np.arange(len(params))[::-1]
    for yi, p in zip(y, params, strict=True):
        colour = GREEN if p.identified else RED
        ax.plot([p.low, p.high], [yi, yi], color=colour, lw=3, alpha=0.6)
        ax.plot(p.value, yi, "D", color=colour, ms=6)
        ax.plot(p.start, yi, "x", color=GREY, ms=7)
    ax.set_yticks(y, [p.name for p in params], fontsize=8)
    ax.set_title(
        "parameters: fitted (diamond), start (x), 95% interval; red = not identified",
        loc="left",
        fontsize=11,
    )
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig)


def _num(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.4g}"


def _param_table(params: Sequence[Interval]) -> str:
    head = (
        "<tr><th>parameter</th><th>start</th><th>fitted</th><th>95% interval</th>"
        "<th>identified</th></tr>"
    )
    rows = []
    for p in params:
        interval = f"[{p.show(p.low)}, {p.show(p.high)}]"
        if p.left:  # the interval is the fit's, around where the fit had put it
            interval += f"<br><small>of the fit at {p.show(p.fitted)}, not of the start</small>"
        state = "yes"
        if not p.identified:
            state = "no: left at its start value" if p.left else "no: kept at the fit's value"
        rows.append(
            f"<tr{'' if p.identified else ' class=out'}><td>{escape(p.name)}</td>"
            f"<td>{p.show(p.start)}</td><td>{p.show(p.value)}</td>"
            f"<td>{interval}</td>"
            f"<td>{state}"
            f"{'' if p.identified or not p.reason else ': ' + escape(p.reason)}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _target_table(rows: Sequence[Comparison]) -> str:
    head = (
        "<tr><th>target</th><th>observed [95%]</th><th>journeys</th><th>fitted</th>"
        "<th>z</th><th>start</th><th>z start</th></tr>"
    )
    body = []
    for r in rows:
        z_text = _num(r.z) if np.isfinite(r.z) else "n/a"
        cls = " class=info" if not r.fitted else (" class=out" if abs(r.z) > 1.96 else "")
        body.append(
            f"<tr{cls}><td>{escape(r.label)}<br><small>{escape(r.name)}</small></td>"
            f"<td>{pct(r.observed, 1)} [{pct(r.low, 1)}, {pct(r.high, 1)}]</td>"
            f"<td>{r.n:,.0f}</td>"
            f"<td>{pct(r.simulated, 1) if np.isfinite(r.simulated) else 'n/a'}</td>"
            f"<td>{z_text}</td>"
            f"<td>{pct(r.simulated_start, 1) if np.isfinite(r.simulated_start) else 'n/a'}</td>"
            f"<td>{_num(r.z_start)}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _uplift_table(rows: Sequence[Comparison]) -> str:
    names = tuple(r.name for r in rows)
    obs = uplifts(names, np.array([r.observed for r in rows]))
    if not obs:
        return ""
    fit = uplifts(names, np.array([r.simulated for r in rows]))
    start = uplifts(names, np.array([r.simulated_start for r in rows]))
    body = "".join(
        f"<tr><td>{escape(k)}</td><td>{obs[k] * 100:+.1f} pts</td>"
        f"<td>{fit.get(k, np.nan) * 100:+.1f} pts</td>"
        f"<td>{start.get(k, np.nan) * 100:+.1f} pts</td></tr>"
        for k in obs
    )
    return (
        "<h3>Uplift of each concession kind on conversion (first offer vs never offered)</h3>"
        "<table><tr><th>kind</th><th>observed</th><th>fitted</th><th>start</th></tr>"
        f"{body}</table>"
    )


def _section(title: str, rows: Sequence[Comparison], note: str) -> str:
    s = summary(list(rows))
    within = s["within_95"]
    text = (
        f"{s['targets']} fitted targets; {pct(within)} within their 95% interval for the "
        f"fitted scenario (start: {pct(s['within_95_start'])}); root mean square z "
        f"{_num(s['rms_z'] or np.nan)} (start {_num(s['rms_z_start'] or np.nan)})."
    )
    return (
        f"<h2>{escape(title)}</h2><p class=meta>{escape(note)}</p><p>{escape(text)}</p>"
        f'<img alt="{escape(title)}" src="{targets_plot(rows, title)}">'
        f"{_target_table(rows)}{_uplift_table(rows)}"
    )


def forecast_plot(forecasts: Mapping[str, Forecast]) -> str:
    """Per policy: the fitted scenario's profit, its forecast interval, the interval of the
    simulation's noise alone, and the mean profit on each replicate scenario."""
    rows = list(forecasts.values())
    fig = Figure(figsize=(8.5, 0.55 * len(rows) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    for i, (yi, f) in enumerate(zip(y, rows, strict=True)):
        first = i == 0
        ax.plot(
            [f.low, f.high],
            [yi, yi],
            color=BLUE,
            lw=6,
            alpha=0.3,
            label="95% forecast (fit + noise)" if first else None,
        )
        ax.plot(
            list(f.noise_interval),
            [yi, yi],
            color=BLUE,
            lw=2,
            label="95% noise only" if first else None,
        )
        ax.plot(
            f.replicates,
            np.full(len(f.replicates), yi + 0.18),
            "|",
            color=GREY,
            ms=6,
            label="replicate scenarios" if first else None,
        )
        ax.plot(f.estimate, yi, "D", color=GREEN, ms=6, label="fitted scenario" if first else None)
    ax.set_yticks(y, [f.policy for f in rows], fontsize=8)
    ax.set_ylim(-0.6, len(rows) - 0.3)
    ax.xaxis.set_major_formatter(lambda x, _: eur(x))
    ax.set_title("profit per 1,000 shoppers on the fitted scenario", loc="left", fontsize=11)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig)


def _forecast_section(forecasts: Mapping[str, Forecast]) -> str:
    if not forecasts:
        return ""
    first = next(iter(forecasts.values()))
    head = (
        "<tr><th>policy</th><th>fitted scenario</th><th>95% forecast</th>"
        "<th>noise only</th><th>replicate scenarios (2.5-97.5%)</th></tr>"
    )
    body = []
    for f in forecasts.values():
        (nlo, nhi), (rlo, rhi) = f.noise_interval, f.fit_interval
        body.append(
            f"<tr><td>{escape(f.policy)}</td><td>{eur(f.estimate)}</td>"
            f"<td>[{eur(f.low)}, {eur(f.high)}]</td><td>[{eur(nlo)}, {eur(nhi)}]</td>"
            f"<td>[{eur(rlo)}, {eur(rhi)}]</td></tr>"
        )
    note = (
        f"What each policy would earn per 1,000 shoppers on the fitted scenario, "
        f"{first.n_shoppers:,} simulated shoppers. The forecast interval counts the fit's "
        f"uncertainty ({len(first.replicates)} replicate scenarios from the bootstrap of "
        "the parameters, the same shoppers on each; a parameter the data does not pin "
        "ranges over what the data allows, even when the fitted scenario left it at its "
        "start value) and the simulation's noise; 'noise only' takes the fit as exact."
    )
    return (
        f"<h2>Profit forecast</h2><p class=meta>{escape(note)}</p>"
        f'<img alt="profit forecast" src="{forecast_plot(forecasts)}">'
        f"<table>{head}{''.join(body)}</table>"
    )


def render_report(
    result: CalibrationResult,
    sources: Sequence[str] = (),
    forecasts: Mapping[str, Forecast] | None = None,
) -> str:
    """The whole page as one HTML string."""
    unidentified = result.unidentified
    if unidentified:
        words = ", ".join(p.name for p in unidentified)
        verdict = (
            f"<p class=warn>The data does not pin down {len(unidentified)} of "
            f"{len(result.params)} parameters: {escape(words)}. Along some direction of "
            "them the fit's objective barely changes (the targets cannot tell those values "
            "apart, or one stands in for another). Where the data allows the start value, "
            "the fit left them there: the fitted scenario keeps the start's assumption, and "
            "whatever a policy trained on it does with those shoppers rests on that "
            "assumption, not on the shop's data; the forecasts carry the whole range the data "
            "leaves open. Where the data rules the start value out, the fit kept its own "
            "value. More journeys, or logs in which those concessions were offered "
            "at random, would identify them.</p>"
        )
    else:
        verdict = "<p class=ok>The data pins down every fitted parameter.</p>"
    trust = result.verdict
    css = {TRUST: "ok", CARE: "warn", DISTRUST: "warn"}[trust.level]
    reasons = "".join(f"<li>{escape(r)}</li>" for r in trust.reasons)
    verdict = (
        f"<p class={css}><b>For choosing a policy: {escape(trust.level)}.</b></p>"
        f"<ul>{reasons}</ul>{verdict}"
    )
    held = ""
    if result.held_out:
        held = _section(
            "Held-out journeys",
            result.held_out,
            f"{result.journeys['held_out']:,} journeys the optimiser never saw.",
        )
    src = "".join(f"<li>{escape(s)}</li>" for s in sources)
    settings = result.settings
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>Fit of {escape(result.fitted.name)}</title><style>{CSS}</style></head>"
        f"<body><main><h1>Fit of {escape(result.fitted.name)}</h1>"
        f"<p class=meta>Started from <b>{escape(result.start.name)}</b>; "
        f"{settings.get('n_shoppers', 0):,} simulated shoppers per trial, seed "
        f"{settings.get('seed')}, {result.evaluations} simulations, "
        f"{result.seconds:.0f} s. Data:</p><ul class=meta>{src}</ul>"
        f"{verdict}<h2>Parameters</h2>"
        f'<img alt="parameters" src="{params_plot(result.params)}">'
        f"{_param_table(result.params)}"
        + _forecast_section(forecasts or {})
        + _section(
            "Fitted journeys",
            result.in_fit,
            f"{result.journeys['fitted']:,} journeys. Targets marked * (grey rows) are "
            "reported, not fitted: the simulator has nothing to fit them with.",
        )
        + held
        + "</main></body></html>"
    )


def write_report(
    path: Path,
    result: CalibrationResult,
    sources: Sequence[str] = (),
    forecasts: Mapping[str, Forecast] | None = None,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result, sources, forecasts), encoding="utf-8")
    return path
