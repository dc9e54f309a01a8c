"""The merchant report: what a policy earns over the current rule, in euros, with intervals.

``python -m experiments.report`` reads training runs from MLflow (an experiment, a sweep,
or given run ids) and their paired evaluations (``evaluation.json``, see
:func:`experiments.evaluate.evaluate`), or evaluation files written by
``python -m experiments.evaluate``, and writes one self-contained HTML file (plots
embedded, no scripts, opens offline) with a JSON of the same figures beside it.

The report opens with a verdict per scenario: *"maskable_ppo earns EUR Y more per 1,000
shoppers than your current rule [95% interval], gives away Z% less in concessions,
interrupts W% fewer shoppers"*. "Your current rule" is ``--current-rule``, by default
``merchant_rules`` when it was evaluated, else the best baseline; the report says which
and why. Then, per scenario: policies x KPIs with intervals, a margin waterfall, when
offers are made and to whom, what privacy costs, the oracle's bound as headroom, and the
learning curves of trained agents; at the end every run asked for, failed ones included,
and a glossary.

Examples::

    python -m experiments.report                                  # experiment "concede"
    python -m experiments.report --sweep <parent run id or sweep folder>
    python -m experiments.report --run-id 3f2a... --run-id 9bc1...
    python -m experiments.report --evaluation outputs/evaluate/<run>/evaluation.json
    python -m experiments.report --current-rule always_free_shipping --out-dir reports/

The default store is the embedded one of ``make run``: ``sqlite:///<cwd>/outputs/mlflow.db``.
Errors (no store, no such experiment, sweep or run, no evaluation to report) exit with
status 2 and say what is missing.

Functions: :func:`write_report` (for other jobs), :func:`load_mlflow_sources`,
:func:`load_evaluation_file`, :func:`build_figures`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Interval = dict[str, float | None]
Figures = dict[str, Any]

PER = "per 1,000 shoppers"
NEVER, ORACLE, DEFAULT_RULE = "never", "oracle", "merchant_rules"
SWEEP_TAG, PARENT_TAG, PARENT_RUN = "concede.sweep", "concede.sweep_parent", "mlflow.parentRunId"
EVALUATION_FILE = "evaluation.json"
CURVE_KEYS = (
    "profit_per_1000",
    "diff_vs_best_per_1000",
    "profit_captured",
    "conversion",
    "giveaway_rate",
    "offer_rate",
)
SAME = 0.02  # relative changes smaller than this read "about as much"
REQUIRED_KEYS = ("scenario", "n_shoppers", "policies", "best_baseline", "overall")


class ReportError(Exception):
    """What the report cannot be made from, and what to do about it (exit status 2)."""


# ------------------------------------------------------------------ intervals and words


def interval(estimate: float | None, low: float | None, high: float | None) -> Interval:
    return {"estimate": estimate, "low": low, "high": high}


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def est(i: Interval | None) -> float | None:
    """The estimate of an interval, or None."""
    return None if i is None else _num(i.get("estimate"))


def eur(x: float | None, signed: bool = False) -> str:
    """``€1,234`` (``-€1,234``; ``+€1,234`` when ``signed``); ``n/a`` for None."""
    if x is None:
        return "n/a"
    sign = "-" if round(x) < 0 else ("+" if signed and round(x) > 0 else "")
    return f"{sign}€{abs(x):,.0f}"


def pct(x: float | None, digits: int | None = None) -> str:
    """A share as ``51%`` (one decimal below 10%); ``n/a`` for None."""
    if x is None:
        return "n/a"
    value = 100 * x
    if digits is None:
        digits = 1 if abs(value) < 10 and round(value, 1) != round(value) else 0
    return f"{round(value, digits) + 0.0:.{digits}f}%"  # + 0.0: no "-0%"


def per_100(x: float | None) -> str:
    """A share as shoppers in 100: ``12``, ``0.4``."""
    if x is None:
        return "n/a"
    value = 100 * x
    return f"{value:.0f}" if abs(value) >= 10 or value == round(value) else f"{value:.1f}"


def _half_width(i: Interval) -> float | None:
    e, lo, hi = (_num(i.get(k)) for k in ("estimate", "low", "high"))
    if e is None or lo is None or hi is None:
        return None
    return max(e - lo, hi - e)


def _negate(i: Interval) -> Interval:
    e, lo, hi = (_num(i.get(k)) for k in ("estimate", "low", "high"))
    return interval(
        None if e is None else -e, None if hi is None else -hi, None if lo is None else -lo
    )


def _or(x: float | None, default: float) -> float:
    return default if x is None else x


def _relative(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old == 0:
        return None
    return (new - old) / old


# ------------------------------------------------------------------ sources


@dataclass
class Source:
    """One run (or evaluation file) asked for: what it is, its evaluation, its curve.

    ``evaluation`` is None when the run left none (failed, killed, still running); such
    runs are listed in the report, with ``note`` saying why they are not in the figures.
    """

    label: str
    status: str
    run_id: str | None = None
    scenario: str | None = None
    agent: str | None = None
    seed: str | None = None
    sweep: str | None = None
    evaluation: dict[str, Any] | None = None
    curve: list[dict[str, float]] = field(default_factory=list)
    note: str = ""


def default_tracking_uri() -> str:
    """The embedded store of ``make run`` under the current folder."""
    return f"sqlite:///{Path.cwd().resolve() / 'outputs' / 'mlflow.db'}"


def check_evaluation(data: Any, where: str) -> dict[str, Any]:
    """``data`` if it is an evaluation (of :mod:`experiments.evaluate`), else ReportError."""
    if not isinstance(data, dict):
        raise ReportError(f"{where} is not an evaluation: expected a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ReportError(
            f"{where} is not an evaluation of experiments.evaluate: missing {missing}. "
            "Pass the evaluation.json written by `python -m experiments.evaluate` or by a "
            "training run."
        )
    return data


def load_evaluation_file(path: str | Path) -> Source:
    """An evaluation JSON file (``python -m experiments.evaluate`` output) as a source."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"no evaluation file at {path}: check the path given to --evaluation")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportError(f"{path} is not valid JSON ({err}); pass an evaluation.json") from None
    evaluation = check_evaluation(data, str(path))
    learner = (evaluation.get("verdict") or {}).get("learner")
    return Source(
        label=str(path),
        status="FILE",
        scenario=str(evaluation["scenario"]),
        agent=learner,
        evaluation=evaluation,
    )


@dataclass(frozen=True)
class Selection:
    """Which runs to read: one of an experiment name, a sweep, or run ids."""

    experiment: str | None = None
    sweep: str | None = None
    run_ids: tuple[str, ...] = ()


def _client(tracking_uri: str) -> Any:
    """An MLflow client of ``tracking_uri``; a SQLite store must exist (MLflow would
    silently create an empty one)."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        if not db.is_file():
            raise ReportError(
                f"no MLflow store at {db} (tracking URI {tracking_uri}). Train first "
                "(`make run`), pass --tracking-uri of the store that holds the runs, "
                "or --evaluation with an evaluation.json."
            )
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri)


def _get_run(client: Any, run_id: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


def _experiment_ids(client: Any) -> list[str]:
    return [e.experiment_id for e in client.search_experiments()]


def _search(client: Any, experiment_ids: list[str], filter_string: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            experiment_ids, filter_string=filter_string, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _is_parent(run: Any) -> bool:
    return run.data.tags.get(PARENT_TAG) == "true"


def _sweep_runs(client: Any, sweep: str, tracking_uri: str) -> tuple[list[Any], str]:
    """The child runs of a sweep given by its parent run id or its ``concede.sweep`` tag."""
    ids = _experiment_ids(client)
    parent = _get_run(client, sweep) if re.fullmatch(r"[0-9a-f]{32}", sweep) else None
    if parent is not None:
        children = _search(client, ids, f"tags.`{PARENT_RUN}` = '{sweep}'")
        tag = parent.data.tags.get(SWEEP_TAG)
        if tag:
            children += _search(client, ids, f"tags.`{SWEEP_TAG}` = '{tag}'")
        label = f"sweep {tag or sweep} (parent run {sweep})"
    else:
        names = [sweep, str(Path(sweep).resolve())]
        children, tag = [], sweep
        for name in dict.fromkeys(names):
            children = _search(client, ids, f"tags.`{SWEEP_TAG}` = '{name}'")
            if children:
                tag = name
                break
        label = f"sweep {tag}"
    unique = {r.info.run_id: r for r in children if not _is_parent(r)}
    if not unique:
        known = sorted(
            {
                f"{r.data.tags.get(SWEEP_TAG)} (parent run {r.info.run_id})"
                for r in _search(client, ids, f"tags.`{PARENT_TAG}` = 'true'")
            }
        )
        raise ReportError(
            f"no sweep {sweep!r} with runs in {tracking_uri}: no parent run with that id and "
            f"no run tagged {SWEEP_TAG}={sweep!r}. Sweeps there: {known or 'none'}."
        )
    return list(unique.values()), label


def select_runs(client: Any, selection: Selection, tracking_uri: str) -> tuple[list[Any], str]:
    """The MLflow runs of ``selection`` (sweep parents expanded to their children) and a
    label of what was asked for. Raises ReportError naming what does not exist."""
    if selection.run_ids:
        runs, missing = [], []
        for run_id in selection.run_ids:
            run = _get_run(client, run_id)
            if run is None:
                missing.append(run_id)
            elif _is_parent(run):
                runs.extend(_sweep_runs(client, run_id, tracking_uri)[0])
            else:
                runs.append(run)
        if missing:
            raise ReportError(
                f"run id(s) not found in {tracking_uri}: {', '.join(missing)}. "
                "Check the ids (`mlflow ui --backend-store-uri ...`) or --tracking-uri."
            )
        label = "runs " + ", ".join(r[:8] for r in selection.run_ids)
        return list({r.info.run_id: r for r in runs}.values()), label
    if selection.sweep:
        return _sweep_runs(client, selection.sweep, tracking_uri)
    name = selection.experiment or "concede"
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ReportError(
            f"no MLflow experiment named {name!r} in {tracking_uri}; experiments there: "
            f"{names or 'none'}. Pass --experiment with one of them, or --tracking-uri."
        )
    runs = [r for r in _search(client, [experiment.experiment_id], "") if not _is_parent(r)]
    if not runs:
        raise ReportError(f"experiment {name!r} in {tracking_uri} has no runs: train first.")
    return runs, f"experiment {name}"


def _curve(client: Any, run_id: str) -> list[dict[str, float]]:
    """The learning curve from the run's metric history: one point per evaluated step."""
    points: dict[int, dict[str, float]] = {}
    for key in CURVE_KEYS:
        for m in client.get_metric_history(run_id, f"eval/{key}"):
            if math.isfinite(m.value):
                points.setdefault(int(m.step), {"timesteps": float(m.step)})[key] = m.value
    return [points[s] for s in sorted(points)]


def _run_source(client: Any, run: Any, folder: Path) -> Source:
    tags, info = run.data.tags, run.info
    source = Source(
        label=tags.get("mlflow.runName") or info.run_name or info.run_id,
        status=str(info.status),
        run_id=info.run_id,
        scenario=tags.get("concede.scenario"),
        agent=tags.get("concede.agent"),
        seed=tags.get("concede.seed"),
        sweep=tags.get(SWEEP_TAG),
        curve=_curve(client, info.run_id),
    )
    try:
        local = client.download_artifacts(info.run_id, EVALUATION_FILE, str(folder))
        data = json.loads(Path(local).read_text(encoding="utf-8"))
        source.evaluation = check_evaluation(data, f"run {info.run_id}'s {EVALUATION_FILE}")
        source.scenario = source.scenario or str(data["scenario"])
    except ReportError as err:
        source.note = str(err)
    except Exception:  # any failure to fetch it means: no evaluation
        why = {
            "FAILED": "the run failed",
            "KILLED": "the run was killed",
            "RUNNING": "the run is still running (or died without saying)",
        }.get(source.status, "the run logged none")
        source.note = f"no {EVALUATION_FILE}: {why}; not in the figures"
    return source


def load_mlflow_sources(tracking_uri: str, selection: Selection) -> tuple[list[Source], str]:
    """Every selected run as a source (runs without evaluation included) and a label."""
    client = _client(tracking_uri)
    runs, label = select_runs(client, selection, tracking_uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    runs.sort(key=lambda r: (r.info.start_time or 0, r.info.run_id))
    with tempfile.TemporaryDirectory(prefix="concede-report-") as tmp:
        sources = [_run_source(client, run, Path(tmp) / str(i)) for i, run in enumerate(runs)]
    return sources, label


# ------------------------------------------------------------------ words for policies

CURVES = {
    "boulware": "holds out: concedes little until late in the journey",
    "linear": "concedes steadily as the journey goes on",
    "conceder": "concedes early in the journey",
}


def _yaml_description(path: Path) -> str:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return ""
    return str(data.get("description", "")) if isinstance(data, dict) else ""


def describe_policy(name: str, learners: Iterable[str] = ()) -> str:
    """A merchant's one-line description of a policy name."""
    if name in learners:
        return f"trained agent ({name}): learned from simulated shoppers when to offer what"
    if name == NEVER:
        return "never offers anything"
    if name == ORACLE:
        return (
            "a cheat that sees each shopper's hidden willingness to buy: an upper bound, "
            "not something you can deploy"
        )
    if name.startswith("always_"):
        what = name.removeprefix("always_").replace("_", " ")
        return f"offers {what} to every shopper about to leave, whenever allowed"
    if name in CURVES:
        return f"concession curve: {CURVES[name]}"
    from agents.baselines import rules_dir

    rules = rules_dir() / f"{name.removeprefix('rules:')}.yaml"
    text = _yaml_description(rules) if rules.is_file() else ""
    return f"hand-written rules ({rules.name}): {text}" if text else name.replace("_", " ")


def describe_scenario(name: str) -> str:
    from envs.scenario_files import scenario_dir

    return _yaml_description(scenario_dir() / f"{name}.yaml")


# ------------------------------------------------------------------ paired differences


def difference(ev: dict[str, Any], group: dict[str, Any], a: str, b: str) -> tuple[Interval, str]:
    """Profit of ``a`` minus ``b`` per 1,000 shoppers of ``group`` and how it was obtained.

    ``"paired"`` when the evaluation holds it shopper by shopper (against ``never``, the
    best baseline, or any pair if it has ``paired_diffs_per_1000``); otherwise
    ``"conservative"``: both policies' paired differences with a common reference,
    subtracted, their half-widths added (an interval at least as wide as the paired one).
    """
    if a == b:
        return interval(0.0, 0.0, 0.0), "paired"
    pairs = group.get("_pairs") or {}
    if a in pairs and b in pairs[a]:
        return pairs[a][b], "paired"
    refs = (("diff_vs_best_per_1000", ev["best_baseline"]), ("diff_vs_never_per_1000", NEVER))
    for key, ref in refs:
        if b == ref and key in group[a]:
            return group[a][key], "paired"
        if a == ref and key in group[b]:
            return _negate(group[b][key]), "paired"
    best: tuple[float, Interval] | None = None
    for key, _ in refs:
        da, db = group[a].get(key), group[b].get(key)
        if not da or not db or est(da) is None or est(db) is None:
            continue
        e = float(est(da)) - float(est(db))  # type: ignore[arg-type]
        ha, hb = _half_width(da), _half_width(db)
        if ha is None or hb is None:
            candidate = interval(e, None, None)
            width = math.inf
        else:
            candidate = interval(e, e - ha - hb, e + ha + hb)
            width = ha + hb
        if best is None or width < best[0]:
            best = (width, candidate)
    if best is None:
        pa, pb = est(group[a]["profit_per_1000"]), est(group[b]["profit_per_1000"])
        return interval(None if pa is None or pb is None else pa - pb, None, None), "conservative"
    return best[1], "conservative"


def _with_pairs(ev: dict[str, Any], group: dict[str, Any]) -> dict[str, Any]:
    """``group`` with the evaluation's all-pairs differences (overall only), if it has them."""
    pairs = ev.get("paired_diffs_per_1000")
    return {**group, "_pairs": pairs} if pairs and group is ev["overall"] else group


# ------------------------------------------------------------------ choices


def choose_rule(ev: dict[str, Any], asked: str | None) -> tuple[str, str]:
    """The current rule of an evaluation and why it is that one."""
    policies = list(ev["policies"])
    if asked:
        if asked not in policies:
            raise ReportError(
                f"--current-rule {asked} was not evaluated on scenario {ev['scenario']}; "
                f"policies evaluated: {', '.join(policies)}"
            )
        return asked, "chosen with --current-rule"
    if DEFAULT_RULE in policies:
        return DEFAULT_RULE, (
            f"your hand-written rules ({DEFAULT_RULE}) were evaluated; "
            "choose another with --current-rule"
        )
    best = str(ev["best_baseline"])
    return best, (
        f"{DEFAULT_RULE} was not evaluated, so the most profitable baseline ({best}) stands in; "
        "choose another with --current-rule"
    )


def learner_of(ev: dict[str, Any]) -> str | None:
    return (ev.get("verdict") or {}).get("learner")


def choose_policy(ev: dict[str, Any], rule: str, asked: str | None) -> tuple[str, str] | None:
    """The policy the verdict is about: ``asked``, else the trained agent, else the most
    profitable other policy (the oracle aside); None if ``asked`` was not evaluated."""
    if asked:
        return (asked, "chosen with --policy") if asked in ev["policies"] else None
    learner = learner_of(ev)
    if learner:
        return learner, "the agent trained in this run"
    others = [p for p in ev["policies"] if p not in (rule, ORACLE)]
    if not others:
        return None
    overall = ev["overall"]
    best = max(others, key=lambda p: _or(est(overall[p]["profit_per_1000"]), -math.inf))
    return best, "the most profitable of the other policies evaluated; choose one with --policy"


# ------------------------------------------------------------------ figures of a scenario

PROFIT_COLUMNS = (
    ("profit_per_1000", "Profit", "eur"),
    ("vs_rule", "vs your current rule", "eur_diff"),
    ("conversion", "Shoppers who bought", "share"),
    ("revenue_per_1000", "Revenue", "eur"),
    ("profit_captured", "Share of the possible gain", "share"),
)
GIVEN_COLUMNS = (
    ("spend_per_1000", "Concessions", "eur"),
    ("giveaway_spend_per_1000", "… to shoppers who would have bought anyway", "eur"),
    ("giveaway_rate", "Concessions not needed", "share"),
    ("agent_sessions_per_1000", "Live-agent chats", "count"),
)
CONTACT_COLUMNS = (
    ("offer_rate", "Shoppers offered something", "share"),
    ("interruptions_per_shopper", "Offers per shopper", "number"),
    ("harassment_exits", "Left annoyed", "share"),
    ("opt_outs", "Withdrew consent", "share"),
)
KIND_LABELS = {
    "percent_discount": "Percentage discounts",
    "fixed_discount": "Fixed discounts",
    "free_shipping": "Free shipping",
    "express_delivery": "Express delivery upgrades",
    "free_gift": "Free gifts",
    "voucher": "Vouchers for the next order",
    "live_agent": "Live-agent cost",
    "retargeting": "Recovery e-mails",
}


@dataclass
class Pick:
    """One evaluation of a scenario with its current rule and the policy judged."""

    source: Source
    rule: str
    rule_why: str
    policy: str
    policy_why: str
    diff: Interval
    method: str

    @property
    def ev(self) -> dict[str, Any]:
        assert self.source.evaluation is not None
        return self.source.evaluation


def _key_policies(pick: Pick) -> list[str]:
    ev = pick.ev
    order = [pick.policy, pick.rule, str(ev["best_baseline"]), NEVER, ORACLE]
    return [p for p in dict.fromkeys(order) if p in ev["overall"]]


def _table(
    pick: Pick, columns: Sequence[tuple[str, str, str]], title: str, note: str
) -> dict[str, Any]:
    ev, overall = pick.ev, _with_pairs(pick.ev, pick.ev["overall"])
    keys = _key_policies(pick)
    rows = []
    for policy in [*keys, *(p for p in ev["policies"] if p not in keys)]:
        k = overall[policy]
        cells = []
        for key, _, _ in columns:
            if key == "vs_rule":
                cells.append(difference(ev, overall, policy, pick.rule)[0])
            else:
                cells.append(k.get(key))
        rows.append({"policy": policy, "key": policy in keys, "cells": cells})
    return {
        "title": title,
        "note": note,
        "columns": [{"key": k, "label": label, "unit": unit} for k, label, unit in columns],
        "rows": rows,
    }


def _kinds_table(pick: Pick) -> dict[str, Any]:
    overall = pick.ev["overall"]
    policies = [p for p in _key_policies(pick) if p != NEVER]
    kinds = list(next(iter(overall.values())).get("spend_by_kind_per_1000", {}))
    used = [
        kind
        for kind in kinds
        if any((est(overall[p]["spend_by_kind_per_1000"][kind]) or 0) > 0 for p in policies)
    ]
    return {
        "policies": policies,
        "rows": [
            {
                "kind": kind,
                "label": KIND_LABELS.get(kind, kind.replace("_", " ")),
                "cells": [overall[p]["spend_by_kind_per_1000"][kind] for p in policies],
            }
            for kind in used
        ],
    }


def waterfall(
    k: dict[str, Any], kinds: Sequence[str] | None = None, lines: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Revenue, what takes it away (cost of goods, delivery, concessions by kind, live
    agents) and the profit left, per 1,000 shoppers: ``[{"label", "value", "kind"}]`` with
    ``kind`` ``"total"`` (revenue, profit) or ``"step"`` (negative: a cost).

    ``kinds``: the concession kinds to show (default: those with spend); ``lines``:
    optional lines (``"Future value"``, ``"Other (rounding, caps)"``) to show even at 0,
    so that two waterfalls have the same lines.
    """
    revenue = est(k["revenue_per_1000"]) or 0.0
    profit = est(k["profit_per_1000"]) or 0.0
    spend = {kind: est(i) or 0.0 for kind, i in k.get("spend_by_kind_per_1000", {}).items()}
    steps: list[dict[str, Any]] = [{"label": "Revenue", "value": revenue, "kind": "total"}]
    if "cost_of_goods_per_1000" in k and "shipping_per_1000" in k:
        future = est(k.get("future_value_per_1000")) or 0.0
        steps += [
            {"label": "Cost of goods", "value": -(est(k["cost_of_goods_per_1000"]) or 0.0)},
            {"label": "Delivery", "value": -(est(k["shipping_per_1000"]) or 0.0)},
        ]
        if future or FUTURE in lines:
            steps.append({"label": FUTURE, "value": future})
    else:
        goods = revenue - sum(spend.values()) - profit
        steps.append({"label": "Cost of goods and delivery", "value": -goods, "rest": True})
    shown = [kind for kind in spend if spend[kind] > 0] if kinds is None else list(kinds)
    for kind in sorted(shown, key=lambda kind: kind == "live_agent"):  # live agents last
        label = KIND_LABELS.get(kind, kind.replace("_", " "))
        steps.append({"label": label, "value": -spend.get(kind, 0.0)})
    rest = profit - sum(s["value"] for s in steps)
    if abs(rest) >= 0.5 or OTHER in lines:
        steps.append({"label": OTHER, "value": rest})
    for step in steps[1:]:
        step["kind"] = "step"
    steps.append({"label": "Profit", "value": profit, "kind": "total"})
    return steps


FUTURE, OTHER = "Future value", "Other (rounding, caps)"


def _waterfalls(pick: Pick) -> dict[str, list[dict[str, Any]]]:
    """The waterfalls of the current rule and the policy judged, with the same lines."""
    overall = pick.ev["overall"]
    policies = list(dict.fromkeys((pick.rule, pick.policy)))
    first = {p: waterfall(overall[p]) for p in policies}
    labels = {s["label"] for w in first.values() for s in w}
    spend = [overall[p].get("spend_by_kind_per_1000", {}) for p in policies]
    kinds = [kind for kind in spend[0] if any((est(s.get(kind)) or 0) > 0 for s in spend)]
    lines = [line for line in (FUTURE, OTHER) if line in labels]
    return {p: waterfall(overall[p], kinds, lines) for p in policies}


CONSENT_LABELS = {"consent": "accepted tracking", "no_consent": "refused tracking"}


def _segments(pick: Pick) -> dict[str, Any]:
    """Who gets offers: by shopper segment, then by tracking consent."""
    ev = pick.ev
    metrics = (
        ("offer_rate", "Shoppers offered something", "share"),
        ("spend_per_1000", "Concessions per 1,000", "eur"),
        ("diff_vs_never_per_1000", "Profit gained over never offering, per 1,000", "eur_diff"),
    )
    rows = []
    for kind, groups in (
        ("segment", ev.get("by_segment", {})),
        ("consent", ev.get("by_consent", {})),
    ):
        for name, group in groups.items():
            rows.append(
                {
                    "group": kind,
                    "segment": CONSENT_LABELS.get(name, name) if kind == "consent" else name,
                    "shoppers": next(iter(group.values())).get("shoppers"),
                    "cells": {
                        key: {p: group[p].get(key) for p in (pick.rule, pick.policy)}
                        for key, _, _ in metrics
                    },
                }
            )
    return {
        "policies": [pick.rule, pick.policy],
        "metrics": [{"key": k, "label": label, "unit": u} for k, label, u in metrics],
        "rows": rows,
    }


def _privacy(pick: Pick) -> dict[str, Any] | None:
    ev = pick.ev
    groups = ev.get("by_consent", {})
    if "consent" not in groups or "no_consent" not in groups:
        return None
    yes, no = groups["consent"], groups["no_consent"]
    rows = []
    for policy in dict.fromkeys((pick.policy, pick.rule, NEVER)):
        if policy not in yes:
            continue
        a, b = yes[policy]["profit_per_1000"], no[policy]["profit_per_1000"]
        gap: Interval = interval(None, None, None)
        ea, eb, ha, hb = est(a), est(b), _half_width(a), _half_width(b)
        if ea is not None and eb is not None:
            e = ea - eb
            # disjoint groups of shoppers: independent estimates, half-widths in quadrature
            h = None if ha is None or hb is None else math.hypot(ha, hb)
            gap = interval(e, None if h is None else e - h, None if h is None else e + h)
        rows.append(
            {
                "policy": policy,
                "consent": a,
                "no_consent": b,
                "gap": gap,
                "gain_consent": yes[policy].get("diff_vs_never_per_1000"),
                "gain_no_consent": no[policy].get("diff_vs_never_per_1000"),
            }
        )
    share = None
    n_yes = next(iter(yes.values())).get("shoppers")
    n_no = next(iter(no.values())).get("shoppers")
    if isinstance(n_yes, int) and isinstance(n_no, int) and n_yes + n_no:
        share = n_yes / (n_yes + n_no)
    return {
        "consent_shoppers": n_yes,
        "no_consent_shoppers": n_no,
        "consent_share": share,
        "rows": rows,
    }


def _headroom(pick: Pick) -> dict[str, Any]:
    overall = pick.ev["overall"]
    oracle = str(pick.ev.get("oracle", ORACLE))
    policies = [p for p in dict.fromkeys((NEVER, pick.rule, pick.policy, oracle)) if p in overall]
    profits = {p: overall[p]["profit_per_1000"] for p in policies}
    captured = {p: overall[p].get("profit_captured") for p in (pick.policy, pick.rule)}
    regret = {p: overall[p].get("regret_per_1000") for p in (pick.policy, pick.rule)}
    gains = {p: overall[p].get("diff_vs_never_per_1000") for p in (pick.rule, pick.policy)}
    never, top = est(profits.get(NEVER)), est(profits.get(oracle))
    gain = None if never is None or top is None else top - never
    c = est(captured[pick.policy])
    sentence = (
        f"The oracle earns {eur(top)} {PER}, {eur(gain)} more than never offering anything. "
        f"{pick.policy} captures {pct(c)} of that gain (your current rule: "
        f"{pct(est(captured[pick.rule]))}) and leaves {eur(est(regret[pick.policy]))} {PER} "
        "on the table. The oracle knows what each shopper would do; no real policy reaches "
        "100%, so read this as the most that better timing could still add."
    )
    return {
        "oracle": oracle,
        "profit_per_1000": profits,
        "oracle_gain_per_1000": gain,
        "gain_over_never_per_1000": gains,
        "captured": captured,
        "regret_per_1000": regret,
        "sentence": sentence,
    }


def _timing(pick: Pick) -> dict[str, Any] | None:
    """When the first offer comes (by visit, by step), if the evaluation records it."""
    overall = pick.ev["overall"]
    policies = [pick.rule, pick.policy]
    if not all("first_offer_visit" in overall[p] for p in policies):
        return None
    out: dict[str, Any] = {"policies": policies}
    for key in ("first_offer_visit", "first_offer_step"):
        bins = list(overall[pick.policy].get(key, {}))
        out[key] = [
            {"bin": b, "cells": {p: overall[p].get(key, {}).get(b) for p in policies}} for b in bins
        ]
    return out


def verdict(pick: Pick) -> dict[str, Any]:
    """The verdict of one evaluation: figures and the sentences that say them."""
    overall = pick.ev["overall"]
    x, rule, diff = pick.policy, pick.rule, pick.diff
    kx, kr = overall[x], overall[rule]
    e, lo, hi = est(diff), _num(diff.get("low")), _num(diff.get("high"))
    spend_x, spend_r = est(kx["spend_per_1000"]), est(kr["spend_per_1000"])
    offer_x, offer_r = est(kx["offer_rate"]), est(kr["offer_rate"])
    spend_change, offer_change = _relative(spend_x, spend_r), _relative(offer_x, offer_r)
    conf = round(100 * float(pick.ev.get("confidence", 0.95)))

    more = "more" if (e or 0) >= 0 else "less"
    bounds = f"[{conf}% interval: {eur(lo, True)} to {eur(hi, True)}]" if lo is not None else ""
    if spend_change is not None and abs(spend_change) < SAME:
        given = "gives away about as much in concessions"
    elif spend_change is not None:
        word = "less" if spend_change <= 0 else "more"
        given = f"gives away {pct(abs(spend_change))} {word} in concessions"
    elif not spend_x:
        given = "gives nothing away, like your current rule"
    else:
        given = "gives away concessions where your current rule gives none"
    given += f" ({eur(spend_x)} instead of {eur(spend_r)} {PER})"
    if offer_change is not None and abs(offer_change) < SAME:
        interrupts = "interrupts about as many shoppers"
    elif offer_change is not None:
        word = "fewer" if offer_change <= 0 else "more"
        interrupts = f"interrupts {pct(abs(offer_change))} {word} shoppers"
    elif not offer_x:
        interrupts = "interrupts nobody, like your current rule"
    else:
        interrupts = "interrupts shoppers where your current rule interrupts nobody"
    interrupts += f" ({per_100(offer_x)} in 100 instead of {per_100(offer_r)})"
    headline = (
        f"{x} earns {eur(abs(e) if e is not None else None)} {more} {PER} than your current "
        f"rule ({rule}) {bounds}, {given}, and {interrupts}."
    ).replace("  ", " ")

    if lo is not None and lo > 0:
        significance = "more"
        sure = f"The whole {conf}% interval is above zero: {x} clearly earns more here."
    elif hi is not None and hi < 0:
        significance = "less"
        sure = f"The whole {conf}% interval is below zero: {x} clearly earns less here."
    else:
        significance = "unclear"
        sure = (
            f"The {conf}% interval includes zero: the difference could go either way; "
            "evaluate on more shoppers before switching."
        )
    if pick.method == "conservative":
        sure += (
            f" (This evaluation does not store {x} against {rule} shopper by shopper, so the "
            "interval is a safe, wider one.)"
        )
    waste_x, waste_r = (
        est(kx.get("giveaway_spend_per_1000")),
        est(kr.get("giveaway_spend_per_1000")),
    )
    waste = (
        f"Of its concessions, {eur(waste_x)} {PER} go to shoppers who would have bought "
        f"anyway (your current rule: {eur(waste_r)})."
    )
    return {
        "policy": x,
        "policy_why": pick.policy_why,
        "current_rule": rule,
        "current_rule_why": pick.rule_why,
        "profit_difference_per_1000": diff,
        "interval_method": pick.method,
        "significance": significance,
        "profit_per_1000": {x: kx["profit_per_1000"], rule: kr["profit_per_1000"]},
        "concession_spend_per_1000": {x: kx["spend_per_1000"], rule: kr["spend_per_1000"]},
        "spend_change": spend_change,
        "offer_rate": {x: kx["offer_rate"], rule: kr["offer_rate"]},
        "offer_change": offer_change,
        "headline": headline,
        "details": [sure, waste],
    }


def _pick(source: Source, rule_asked: str | None, policy_asked: str | None) -> Pick | None:
    ev = source.evaluation
    assert ev is not None
    rule, rule_why = choose_rule(ev, rule_asked)
    chosen = choose_policy(ev, rule, policy_asked)
    if chosen is None:
        return None
    policy, policy_why = chosen
    diff, method = difference(ev, _with_pairs(ev, ev["overall"]), policy, rule)
    return Pick(source, rule, rule_why, policy, policy_why, diff, method)


def _run_row(pick: Pick) -> dict[str, Any]:
    k = pick.ev["overall"][pick.policy]
    return {
        "label": pick.source.label,
        "run_id": pick.source.run_id,
        "policy": pick.policy,
        "seed": pick.source.seed,
        "shoppers": pick.ev.get("n_shoppers"),
        "vs_rule": pick.diff,
        "profit_per_1000": k["profit_per_1000"],
        "profit_captured": k.get("profit_captured"),
        "offer_rate": k.get("offer_rate"),
        "spend_per_1000": k.get("spend_per_1000"),
    }


def scenario_figures(
    scenario: str, sources: list[Source], rule: str | None, policy: str | None
) -> dict[str, Any] | None:
    """Every figure of one scenario, from the evaluations of ``sources`` (which all have
    one). The headline evaluation is the one whose policy earns most over the current
    rule; the others are summarised in ``runs``. None when no evaluation has ``policy``."""
    picks = [p for s in sources if (p := _pick(s, rule, policy)) is not None]
    if not picks:
        return None
    picks.sort(key=lambda p: _or(est(p.diff), -math.inf), reverse=True)
    head = picks[0]
    ev = head.ev
    learners = {n for p in picks if (n := learner_of(p.ev))}
    policies = list(ev["policies"])
    conf = round(100 * float(ev.get("confidence", 0.95)))
    return {
        "scenario": scenario,
        "description": describe_scenario(scenario),
        "source": head.source.label,
        "run_id": head.source.run_id,
        "n_shoppers": ev["n_shoppers"],
        "seed": ev.get("seed"),
        "confidence": conf,
        "policies": {p: describe_policy(p, learners) for p in policies},
        "key_policies": _key_policies(head),
        "best_baseline": ev["best_baseline"],
        "verdict": verdict(head),
        "profit": _table(
            head,
            PROFIT_COLUMNS,
            "Profit and sales",
            f"Euros {PER}. 'vs your current rule' compares on the same shoppers.",
        ),
        "given": _table(
            head,
            GIVEN_COLUMNS,
            "What is given away",
            f"Concession cost in euros {PER}: discounts, shipping waived, gifts, vouchers, "
            "e-mails and live-agent time.",
        ),
        "contact": _table(
            head,
            CONTACT_COLUMNS,
            "How often shoppers are interrupted",
            "Every offer is a pop-up, a chat or an e-mail: an interruption.",
        ),
        "kinds": _kinds_table(head),
        "waterfall": _waterfalls(head),
        "segments": _segments(head),
        "privacy": _privacy(head),
        "headroom": _headroom(head),
        "timing": _timing(head),
        "runs": [_run_row(p) for p in picks],
        "curves": [
            {
                "label": _curve_label(s),
                "run_id": s.run_id,
                "status": s.status,
                "points": s.curve,
            }
            for s in sources
            if s.curve
        ],
    }


def _curve_label(source: Source) -> str:
    parts = [source.agent or source.label]
    if source.seed is not None:
        parts.append(f"seed {source.seed}")
    if source.status not in ("FINISHED", "FILE"):
        parts.append(source.status.lower())
    return " · ".join(parts)


def build_figures(
    sources: Sequence[Source],
    *,
    current_rule: str | None = None,
    policy: str | None = None,
    title: str = "What your concessions earn",
    selection: str = "",
    tracking_uri: str | None = None,
) -> Figures:
    """Every figure of the report as JSON-ready data (the HTML shows exactly these).

    Raises:
        ReportError: no source has an evaluation, ``current_rule`` was not evaluated, or
            no evaluation has ``policy``.
    """
    usable = [s for s in sources if s.evaluation is not None]
    if not usable:
        listed = "; ".join(f"{s.label} ({s.status}): {s.note}" for s in sources) or "none"
        raise ReportError(
            f"nothing to report: none of the {len(sources)} run(s) selected has an "
            f"{EVALUATION_FILE}. Runs: {listed}"
        )
    by_scenario: dict[str, list[Source]] = {}
    for s in usable:
        by_scenario.setdefault(str(s.evaluation["scenario"]), []).append(s)  # type: ignore[index]
    # curves of runs without evaluation (failed midway) still belong to their scenario
    for s in sources:
        if s.evaluation is None and s.curve and s.scenario in by_scenario:
            by_scenario[s.scenario].append(s)
    scenarios = []
    for name, group in by_scenario.items():
        evaluated = [s for s in group if s.evaluation is not None]
        figures = scenario_figures(name, evaluated, current_rule, policy)
        if figures is not None:
            unevaluated = [s for s in group if s.evaluation is None]
            figures["curves"] += [
                {
                    "label": _curve_label(s),
                    "run_id": s.run_id,
                    "status": s.status,
                    "points": s.curve,
                }
                for s in unevaluated
            ]
            scenarios.append(figures)
    if not scenarios:
        raise ReportError(
            f"--policy {policy} is in none of the evaluations; policies there: "
            f"{sorted({p for s in usable for p in s.evaluation['policies']})}"  # type: ignore[index]
        )
    used = {s["run_id"] or s["source"] for s in scenarios}
    runs = []
    for s in sources:
        in_figures = s.evaluation is not None and s.scenario in {x["scenario"] for x in scenarios}
        note = s.note or ("in the figures" if in_figures else "not in the figures")
        if in_figures and (s.run_id or s.label) in used:
            note = "headline of its scenario"
        runs.append(
            {
                "label": s.label,
                "run_id": s.run_id,
                "status": s.status,
                "scenario": s.scenario,
                "agent": s.agent,
                "seed": s.seed,
                "sweep": s.sweep,
                "has_evaluation": s.evaluation is not None,
                "note": note,
            }
        )
    return {
        "title": title,
        "generated": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip(),
        "selection": selection,
        "tracking_uri": tracking_uri,
        "scenarios": scenarios,
        "runs": runs,
        "missing": missing_figures(scenarios),
    }


def missing_figures(scenarios: list[dict[str, Any]]) -> list[str]:
    """What the evaluations do not record, that the report would show if they did."""
    out = []
    if any(s["timing"] is None for s in scenarios):
        out.append(
            "When the first offer comes (by visit and by step): the evaluation does not record "
            "first_offer_visit / first_offer_step."
        )
    if any(any(step.get("rest") for step in w) for s in scenarios for w in s["waterfall"].values()):
        out.append(
            "Cost of goods and delivery separately: the evaluation does not record them, so the "
            "waterfall shows them together, as revenue minus concessions minus profit."
        )
    return out


# ------------------------------------------------------------------ writing


def write_report(
    run_ids: Sequence[str] = (),
    *,
    tracking_uri: str | None = None,
    out_dir: str | Path = "outputs/reports",
    experiment: str | None = None,
    sweep: str | None = None,
    evaluations: Sequence[str | Path] = (),
    current_rule: str | None = None,
    policy: str | None = None,
    name: str | None = None,
) -> Path:
    """Write the report of the given runs and/or evaluation files; the HTML file's path.

    Reads ``run_ids`` (or the runs of ``sweep``, or of ``experiment``; the experiment
    ``concede`` when none of these nor ``evaluations`` is given) from ``tracking_uri``
    (default :func:`default_tracking_uri`), plus ``evaluations`` files, and writes
    ``<out_dir>/<name>.html`` and ``<name>.json`` (the figures); ``name`` defaults to
    ``concede-report-<timestamp>``.

    Raises:
        ReportError: what is missing (store, experiment, sweep, runs, evaluations).
    """
    from experiments import report_html, report_plots

    sources: list[Source] = []
    labels: list[str] = []
    uri = tracking_uri or default_tracking_uri()
    if run_ids or sweep or experiment or not evaluations:
        selection = Selection(experiment=experiment, sweep=sweep, run_ids=tuple(run_ids))
        found, label = load_mlflow_sources(uri, selection)
        sources += found
        labels.append(label)
    for path in evaluations:
        sources.append(load_evaluation_file(path))
        labels.append(str(path))
    figures = build_figures(
        sources,
        current_rule=current_rule,
        policy=policy,
        selection="; ".join(labels),
        tracking_uri=uri if len(labels) > len(evaluations) else None,
    )
    plots = report_plots.make_plots(figures)
    html = report_html.render(figures, plots)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = name or f"concede-report-{dt.datetime.now():%Y%m%d-%H%M%S}"
    (out / f"{stem}.json").write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    path = out / f"{stem}.html"
    path.write_text(html, encoding="utf-8")
    return path.resolve()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.report",
        description="Write the merchant report (HTML + JSON) of training runs or evaluations.",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--experiment", help="MLflow experiment name (default: concede)")
    which.add_argument("--sweep", help="a sweep: its parent run id or its folder (concede.sweep)")
    which.add_argument(
        "--run-id", action="append", default=[], dest="run_ids", help="a run id (repeatable)"
    )
    parser.add_argument(
        "--evaluation",
        action="append",
        default=[],
        dest="evaluations",
        help="an evaluation.json of experiments.evaluate or of a run (repeatable)",
    )
    parser.add_argument(
        "--tracking-uri", help="MLflow store (default: sqlite:///<cwd>/outputs/mlflow.db)"
    )
    parser.add_argument(
        "--current-rule",
        help=f"the policy you use today (default: {DEFAULT_RULE} if evaluated, else the best "
        "baseline)",
    )
    parser.add_argument(
        "--policy", help="the policy the verdict is about (default: the trained agent)"
    )
    parser.add_argument("--out-dir", default="outputs/reports", help="folder of the report")
    parser.add_argument("--name", help="file name without extension (default: timestamped)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        path = write_report(
            args.run_ids,
            tracking_uri=args.tracking_uri,
            out_dir=args.out_dir,
            experiment=args.experiment,
            sweep=args.sweep,
            evaluations=args.evaluations,
            current_rule=args.current_rule,
            policy=args.policy,
            name=args.name,
        )
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    print(f"report: {path}")
    print(f"figures: {path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
