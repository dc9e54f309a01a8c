"""The plots of the merchant report: matplotlib (Agg) figures as embedded SVG data URIs.

:func:`make_plots` draws every plot of the figures built by
:func:`experiments.reporting.figures.build_figures` and returns them by key
(``"<scenario>/<plot>"``) as ``data:image/svg+xml;base64,...`` strings, for ``<img>``
tags: the HTML stays one file, opens offline, and an image's ids cannot clash with
another's. Plots only show figures that are in the report's JSON.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from agents.registry import NEVER
from experiments.evaluation.formatting import eur, eur_compact, pct
from experiments.reporting.intervals import est

GREEN, BLUE, PINK, GREY, ORANGE, SKY, RED = (
    "#009E73",
    "#0072B2",
    "#CC79A7",
    "#8C8C8C",
    "#E69F00",
    "#56B4E9",
    "#C0392B",
)
KIND_COLOURS = (
    "#0072B2",
    "#56B4E9",
    "#009E73",
    "#E69F00",
    "#CC79A7",
    "#D55E00",
    "#F0E442",
    "#8C8C8C",
)
STYLE: Any = {  # rcParams (typed loosely: matplotlib types its keys as literals)
    "font.size": 10.5,
    "axes.titlesize": 11.5,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "path",
    "svg.hashsalt": "concede-report",
}
EUROS = FuncFormatter(lambda x, _: eur(x))
SHARE = FuncFormatter(lambda x, _: f"{100 * x:.0f}%")
THOUSANDS = FuncFormatter(lambda x, _: eur_compact(x))


def colour(policy: str, scn: dict[str, Any]) -> str:
    """One colour per role: the policy judged, the current rule, the best baseline, never,
    the oracle; others share one."""
    v = scn["verdict"]
    roles = {
        v["policy"]: GREEN,
        v["current_rule"]: BLUE,
        scn["headroom"]["oracle"]: ORANGE,
        NEVER: GREY,
    }
    if policy in roles:
        return roles[policy]
    return PINK if policy == scn["best_baseline"] else SKY


def to_data_uri(fig: Figure) -> str:
    """The figure as an SVG data URI (fonts drawn as paths: no font files needed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def new_figure(width: float, height: float, ncols: int = 1, **kw: Any) -> tuple[Figure, list[Axes]]:
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(1, ncols, squeeze=False, **kw)[0]
    return fig, list(axes)


def _err(i: dict[str, Any] | None) -> tuple[float, float, float]:
    """Estimate and the error-bar lengths below / above it (0 where unknown)."""
    e = est(i) or 0.0
    if i is None or i.get("low") is None or i.get("high") is None:
        return e, 0.0, 0.0
    return e, max(0.0, e - float(i["low"])), max(0.0, float(i["high"]) - e)


def hbars(
    ax: Axes,
    labels: Sequence[str],
    values: Sequence[dict[str, Any] | None],
    colours: Sequence[str],
    fmt: FuncFormatter,
    offset: float = 0.0,
    height: float = 0.7,
    label: str | None = None,
) -> None:
    ests = [_err(v) for v in values]
    ys = [i + offset for i in range(len(labels))]
    ax.barh(
        ys,
        [e for e, _, _ in ests],
        height=height,
        color=colours,
        xerr=[[lo for _, lo, _ in ests], [hi for _, _, hi in ests]],
        error_kw={"ecolor": "#333333", "capsize": 3, "lw": 1},
        label=label,
    )
    for y, (e, _, hi) in zip(ys, ests, strict=True):
        ax.annotate(
            fmt(e, None),
            (max(e + hi, 0.0), y),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=9.5,
            color="#333333",
        )


def profit_plot(scn: dict[str, Any]) -> str:
    """Profit per 1,000 shoppers of the key policies, with intervals."""
    overall_rows = {r["policy"]: r["cells"][0] for r in scn["profit"]["rows"]}
    policies = list(reversed(scn["key_policies"]))
    fig, (ax,) = new_figure(8.5, 0.5 * len(policies) + 1.0)
    hbars(
        ax,
        policies,
        [overall_rows[p] for p in policies],
        [colour(p, scn) for p in policies],
        EUROS,
    )
    ax.set_yticks(range(len(policies)), policies)
    ax.xaxis.set_major_formatter(EUROS)
    ax.set_title(f"Profit per 1,000 shoppers ({scn['confidence']}% interval)")
    ax.margins(x=0.15)
    return to_data_uri(fig)


def waterfall_plot(scn: dict[str, Any]) -> str:
    """Revenue to profit per 1,000 shoppers, for the current rule and the policy judged."""
    falls = scn["waterfall"]
    names = list(falls)
    labels = list(dict.fromkeys(step["label"] for w in falls.values() for step in w))
    fig, axes = new_figure(
        4.2 * len(names) + 1.8, 0.42 * len(labels) + 1.1, len(names), sharey=True, sharex=True
    )
    for ax, name in zip(axes, names, strict=True):
        steps = {s["label"]: s for s in falls[name]}
        level = 0.0
        for y, label in enumerate(labels):
            step = steps.get(label)
            if step is None:
                continue
            value = float(step["value"])
            if step["kind"] == "total":
                left, width = 0.0, value
                level = value
                col = GREEN if label == "Profit" else GREY
            else:
                left, width = level, value
                level += value
                col = RED if value < 0 else GREEN
            ax.barh(y, width, left=left, color=col, height=0.65)
            ax.annotate(
                EUROS(value, None),
                (max(left, left + width), y),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=9.5,
            )
        ax.set_title(name, color=colour(name, scn))
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.xaxis.set_major_formatter(THOUSANDS)
        ax.margins(x=0.25)
        ax.axvline(0, color="#333333", lw=0.8)
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].invert_yaxis()
    fig.suptitle(
        "Where the money goes, per 1,000 shoppers", x=0.02, ha="left", weight="bold", fontsize=11.5
    )
    return to_data_uri(fig)


def kinds_plot(scn: dict[str, Any]) -> str | None:
    """Concession spend by kind per 1,000 shoppers, stacked, per key policy."""
    kinds = scn["kinds"]
    if not kinds["rows"]:
        return None
    policies = kinds["policies"]
    fig, (ax,) = new_figure(8.5, 0.55 * len(policies) + 1.5)
    left = [0.0] * len(policies)
    for row, col in zip(kinds["rows"], KIND_COLOURS * 3, strict=False):
        values = [est(c) or 0.0 for c in row["cells"]]
        ax.barh(range(len(policies)), values, left=left, color=col, label=row["label"], height=0.6)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_yticks(range(len(policies)), policies)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(EUROS)
    ax.set_title("Concessions per 1,000 shoppers, by kind")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncols=3, frameon=False, fontsize=8)
    return to_data_uri(fig)


def segments_plot(scn: dict[str, Any]) -> str | None:
    """Who gets offers: share offered and concessions per 1,000, by shopper segment."""
    seg = scn["segments"]
    if not seg["rows"]:
        return None
    names = [r["segment"].replace("_", " ") for r in seg["rows"]]
    policies = seg["policies"]
    fig, axes = new_figure(10.0, 0.6 * len(names) + 1.5, 2, sharey=True)
    for ax, (key, title, fmt) in zip(
        axes,
        (
            ("offer_rate", "Shoppers offered something", SHARE),
            ("spend_per_1000", "Concessions per 1,000 shoppers", EUROS),
        ),
        strict=True,
    ):
        height = 0.8 / len(policies)
        for j, policy in enumerate(policies):
            values = [r["cells"][key][policy] for r in seg["rows"]]
            hbars(
                ax,
                names,
                values,
                [colour(policy, scn)] * len(names),
                fmt,
                offset=(j - (len(policies) - 1) / 2) * height,
                height=height,
                label=policy,
            )
        ax.set_title(title)
        ax.xaxis.set_major_formatter(fmt)
        ax.margins(x=0.2)
    split = sum(1 for r in seg["rows"] if r.get("group", "segment") == "segment")
    if 0 < split < len(names):
        for ax in axes:
            ax.axhline(split - 0.5, color="#999999", lw=0.8, ls="--")
    axes[0].set_yticks(range(len(names)), names)
    axes[0].invert_yaxis()
    axes[0].legend(loc="upper center", bbox_to_anchor=(1.0, -0.12), ncols=2, frameon=False)
    return to_data_uri(fig)


def privacy_plot(scn: dict[str, Any]) -> str | None:
    """Profit per 1,000 shoppers with and without tracking consent, per policy."""
    privacy = scn["privacy"]
    if not privacy or not privacy["rows"]:
        return None
    groups = (("consent", "Accepted tracking"), ("no_consent", "Refused tracking"))
    policies = [r["policy"] for r in privacy["rows"]]
    fig, (ax,) = new_figure(8.5, 0.45 * len(groups) * len(policies) + 1.5)
    height = 0.8 / len(policies)
    for j, row in enumerate(privacy["rows"]):
        hbars(
            ax,
            [g for g, _ in groups],
            [row[g] for g, _ in groups],
            [colour(row["policy"], scn)] * len(groups),
            EUROS,
            offset=(j - (len(policies) - 1) / 2) * height,
            height=height,
            label=row["policy"],
        )
    ax.set_yticks(range(len(groups)), [label for _, label in groups])
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(EUROS)
    ax.margins(x=0.15)
    ax.set_title("Profit per 1,000 shoppers, by tracking consent")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=len(policies), frameon=False)
    return to_data_uri(fig)


def headroom_plot(scn: dict[str, Any]) -> str | None:
    """What the current rule and the policy judged gain over never offering, against the
    oracle's gain: the share captured and what is left on the table."""
    h = scn["headroom"]
    bound = h["oracle_gain_per_1000"]
    gains = h["gain_over_never_per_1000"]
    if bound is None:
        return None
    policies = list(gains)
    fig, (ax,) = new_figure(8.5, 0.6 * len(policies) + 1.3)
    ys = range(len(policies))
    ax.barh(ys, [bound] * len(policies), height=0.7, color="#FBE3B5", label="the oracle's gain")
    hbars(
        ax,
        policies,
        [gains[p] for p in policies],
        [colour(p, scn) for p in policies],
        EUROS,
        height=0.45,
    )
    for y, policy in zip(ys, policies, strict=True):
        captured = est(h["captured"].get(policy))
        if captured is not None:
            ax.annotate(
                f"captures {pct(captured)}",
                (bound, y),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                fontsize=9.5,
                color="#7a4b00",
            )
    split = h.get("split") or {}
    informed, never = split.get("informed_profit_per_1000"), split.get("never_profit_per_1000")
    if informed is not None and never is not None:
        ax.axvline(
            informed - never,
            color="#7a4b00",
            lw=1.6,
            ls="--",
            label="informed bound (knows the shopper, not the dice): learnable up to here, "
            "luck beyond",
        )
    ax.axvline(0, color="#333333", lw=0.8)
    ax.set_yticks(list(ys), policies)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(EUROS)
    ax.margins(x=0.22)
    ax.set_title("Profit gained over never offering, per 1,000 shoppers, and the oracle's bound")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    return to_data_uri(fig)


def timing_plot(scn: dict[str, Any]) -> str | None:
    """When the first offer comes: share of shoppers by visit and by step."""
    timing = scn["timing"]
    if not timing:
        return None
    policies = timing["policies"]
    fig, axes = new_figure(10.0, 3.0, 2)
    for ax, (key, title) in zip(
        axes,
        (
            ("first_offer_visit", "First offer, by visit"),
            ("first_offer_step", "… by step of the journey"),
        ),
        strict=True,
    ):
        bins = [b["bin"] for b in timing[key]]
        width = 0.8 / len(policies)
        for j, policy in enumerate(policies):
            vals = [est(b["cells"][policy]) or 0.0 for b in timing[key]]
            xs = [i + (j - (len(policies) - 1) / 2) * width for i in range(len(bins))]
            ax.bar(xs, vals, width=width, color=colour(policy, scn), label=policy)
        ax.set_xticks(range(len(bins)), bins)
        ax.yaxis.set_major_formatter(SHARE)
        ax.set_title(title)
    axes[0].set_xlabel("visit")
    axes[1].set_xlabel("decision step (page views, cart edits, checkout steps)")
    axes[0].legend(loc="upper center", bbox_to_anchor=(1.1, -0.28), ncols=2, frameon=False)
    return to_data_uri(fig)


def curves_plot(scn: dict[str, Any]) -> str | None:
    """Learning curves: profit per 1,000 evaluation shoppers and share of the possible
    gain captured, against training experience, one line per run."""
    curves = [c for c in scn["curves"] if c["points"]]
    if not curves:
        return None
    fig, axes = new_figure(10.0, 3.4, 2)
    palette = (GREEN, BLUE, PINK, ORANGE, SKY, "#D55E00", GREY)
    reference_drawn = False
    for curve, col in zip(curves, palette * 10, strict=False):
        pts = curve["points"]
        xs = [p["timesteps"] for p in pts]
        style = "-" if curve["status"] in ("FINISHED", "FILE") else ":"
        for ax, key in zip(axes, ("profit_per_1000", "profit_captured"), strict=True):
            ys = [p.get(key) for p in pts]
            ax.plot(xs, ys, style, marker="o", ms=3, color=col, label=curve["label"])
        refs = [
            p["profit_per_1000"] - p["diff_vs_best_per_1000"]
            for p in pts
            if "profit_per_1000" in p and "diff_vs_best_per_1000" in p
        ]
        if refs and not reference_drawn:
            axes[0].axhline(
                refs[-1], color=PINK, ls="--", lw=1, label="best baseline, same test shoppers"
            )
            reference_drawn = True
    axes[0].set_title("Profit per 1,000 test shoppers")
    axes[0].yaxis.set_major_formatter(EUROS)
    axes[1].set_title("Share of the possible gain captured")
    axes[1].yaxis.set_major_formatter(SHARE)
    for ax in axes:
        ax.set_xlabel("training experience (shopper steps)")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
    axes[0].legend(frameon=False, fontsize=8)
    return to_data_uri(fig)


PLOTS = {
    "profit": profit_plot,
    "waterfall": waterfall_plot,
    "kinds": kinds_plot,
    "segments": segments_plot,
    "privacy": privacy_plot,
    "headroom": headroom_plot,
    "timing": timing_plot,
    "curves": curves_plot,
}


def make_plots(figures: dict[str, Any]) -> dict[str, str]:
    """Every plot of the report, ``"<scenario>/<plot>"`` to an SVG data URI; plots
    without data (no timing, no curves) are absent."""
    out: dict[str, str] = {}
    with matplotlib.rc_context(STYLE):
        for scn in figures["scenarios"]:
            for key, draw in PLOTS.items():
                uri = draw(scn)
                if uri:
                    out[f"{scn['scenario']}/{key}"] = uri
    return out
