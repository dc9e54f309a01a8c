"""What the log cannot show, measured: a policy in its own shared state, not the logger's.

Off-policy evaluation reweights logged decisions, each journey as if it did not depend on
the others. Where shoppers share state, it does: a **campaign budget** that one shopper's
concession spends for the next, **shoppers learning to wait** (a population memory of how
often hesitating was rewarded, ``strategic.strength > 0``), a **live-agent desk** whose
agents one shopper keeps from another (a ``live_agent`` concession at a capacity below
1,000 per 1,000). The logged shoppers lived in the shared state the *logger* produced, so
a reweighted figure is the policy's value in the logger's shared state, not in its own,
and no reweighting can see the difference. This module measures it in a scenario of the
shop (:func:`measure_interference`) and corrects the figure by it (:func:`corrected`).

**The measurement.** On ``replicates`` runs of ``n_shoppers`` shoppers
(:func:`agents.rollout.run_policy`, replicate ``r`` on seed ``seeds(seed)[r]``), each run
twice on the same seed (common random numbers: the same shoppers, the same draws):

1. *the policy alone*: it serves every shopper, in the shared state it produces itself;
2. *the policy among the logger's shoppers* (:class:`AmongLogger`): each shopper is
   served by the policy with probability ``share`` (drawn per cohort from a generator of
   the replicate), else by the logger with its exploration, exactly as
   :func:`agents.logs.simulate.simulate_logs` explores: the shared state a log of that
   logger holds, the policy's few shoppers barely moving it.

The **correction** (profit per 1,000 journeys) is the mean, over the shoppers the policy
served in run 2, of their profit in run 1 minus their profit in run 2: the policy alone
minus the policy among the logger's shoppers, paired shopper by shopper. Shoppers who do
not share state meet exactly the same fate in both runs, so on a scenario without shared
state the correction is 0 exactly; otherwise its interval is Student's over the
replicates (``confidence``), since the shared state is drawn once per run.

**Its cause.** With ``attribute``, the measurement is repeated on the same seeds with each
shared-state component of the scenario switched off in turn (without it, only the
campaign budget, which the own-budget case below needs) (:func:`switched_off`: the
budget to None, ``strategic.strength`` to 0, the desk's capacity to 1,000 per 1,000); a
component's part is the correction minus the correction without it, paired replicate by
replicate (:attr:`~experiments.offpolicy.result.Interference.components`). :func:`cause`
says it in words: ``the campaign budget: +310 of +360``.

**The corrected figure** (:func:`summarise`): the reweighting's profit on the *logged
eligibility* plus the correction (:func:`corrected`), its interval the two half-widths
in quadrature on each side; the logged-eligibility figure is the one whose shoppers lived
in the logger's shared state throughout. A policy evaluated **under its own budget**
(:mod:`experiments.offpolicy.budget`) already has the budget's part answered by the log:
its figure is corrected by the correction measured with the budget switched off (the
other components' part; 0 when the budget is the only one). When the budget's verdict
**spans both** evaluations, each is corrected so (the own-budget figure by the part
without the budget, the logged-eligibility one by the whole), the point is the corrected
figure of the evaluation the spend estimate points to, and the interval holds both.

Both figures are shown, marked for what they assume: the plain one
(:data:`PLAIN_ASSUMES`) that shoppers do not affect one another, the corrected one that
the scenario's shared state is the shop's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from agents.exploration import Exploration, draw_actions
from agents.policy import Policy, PrivilegedPolicy
from agents.rollout import run_policy
from envs.core import ShopperCore
from envs.observation import feature_schema
from envs.scenario import ConcessionKind, Scenario
from experiments.evaluation.formatting import interval_text
from experiments.offpolicy import budget
from experiments.offpolicy.result import (
    PROFIT_KEY,
    BudgetSummary,
    Estimate,
    Interference,
    InterferenceSummary,
    PolicyEstimates,
)

__all__ = [
    "COMPONENTS",
    "AmongLogger",
    "Interference",
    "InterferenceSettings",
    "corrected",
    "measure_interference",
    "shared_state",
    "summarise",
]

BUDGET, LEARNING, DESK = "campaign_budget", "learning_shoppers", "live_agent_desk"
COMPONENTS = {
    BUDGET: "the campaign budget",
    LEARNING: "shoppers learning to wait",
    DESK: "the live-agent desk",
}
"""The shared-state components, keyed as the JSON keys them, with their names in words."""

UNBOUNDED_DESK = 1000.0  # agents per 1,000 shoppers: one each, never full
PLAIN_ASSUMES = "shoppers do not affect one another"
ARM_STREAM = 0xA4D  # spawn key of a replicate's arm generator beside its seed


def corrected_assumes(scenario: str) -> str:
    """What the corrected figure assumes, in words."""
    return f"the shared state of scenario {scenario!r} is the shop's"


def shared_state(scenario: Scenario) -> tuple[str, ...]:
    """The shared-state components of ``scenario`` (keys of :data:`COMPONENTS`): a
    campaign budget, shoppers who learn to wait, a live-agent desk that can be full."""
    out = []
    if scenario.campaign_budget_per_1000 is not None:
        out.append(BUDGET)
    if scenario.strategic.strength > 0.0:
        out.append(LEARNING)
    desk = any(c.kind is ConcessionKind.LIVE_AGENT for c in scenario.concessions)
    if desk and scenario.live_agents.capacity_per_1000 < UNBOUNDED_DESK:
        out.append(DESK)
    return tuple(out)


def switched_off(scenario: Scenario, component: str) -> Scenario:
    """``scenario`` with one shared-state ``component`` switched off."""
    if component == BUDGET:
        return replace(scenario, campaign_budget_per_1000=None)
    if component == LEARNING:
        return replace(scenario, strategic=replace(scenario.strategic, strength=0.0))
    if component == DESK:
        desk = replace(scenario.live_agents, capacity_per_1000=UNBOUNDED_DESK)
        return replace(scenario, live_agents=desk)
    raise ValueError(f"no shared-state component {component!r}: one of {list(COMPONENTS)}")


@dataclass(frozen=True)
class InterferenceSettings:
    """How the interference is measured (``interference:`` of ``conf/ope.yaml``).

    ``share``: the policy's share of the shoppers among the logger's, in (0, 1);
    ``n_shoppers`` per run and ``replicates`` (at least 2) paired runs from ``seed``;
    ``confidence`` of the intervals; ``attribute``: also measure each component's part;
    ``logger`` and ``exploration`` (text, ``epsilon:0.1``): the logging policy, for a log
    whose metadata does not name it (None: the log's); ``required``: fail, rather than
    warn, when it cannot be measured (no logger known)."""

    share: float = 0.1
    n_shoppers: int = 20_000
    replicates: int = 8
    seed: int = 0
    confidence: float = 0.95
    attribute: bool = True
    logger: str | None = None
    exploration: str | None = None
    required: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.share < 1.0:
            raise ValueError(f"interference.share must be in (0, 1), got {self.share}")
        if self.n_shoppers < 100:
            raise ValueError(f"interference.n_shoppers must be at least 100, got {self.n_shoppers}")
        if self.replicates < 2:
            raise ValueError(
                f"interference.replicates must be at least 2 for an interval, got {self.replicates}"
            )
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"interference.confidence must be in (0, 1), got {self.confidence}")


class AmongLogger:
    """A policy serving a random ``share`` of the shoppers among a logger's.

    Each row of the batch (a shopper of the cohort, :func:`agents.rollout.run_policy`) is
    assigned to the policy with probability ``share``, else to ``logger`` exploring with
    ``exploration`` (over the eligible actions, as the simulated logs explore); the
    assignment is drawn from ``rng`` when a cohort starts and holds for the cohort, and the
    logger's exploration draws come from ``rng`` too. ``arms`` holds the assignment of
    every shopper run so far, in the rollout's order (True: the policy's).

    ``bind`` is the rollout's hook for a cohort's start: it reads only the cohort's size,
    no hidden state. Acting on a batch of another size without it draws a new assignment.
    """

    def __init__(
        self,
        policy: Policy,
        logger: Policy,
        exploration: Exploration,
        share: float,
        rng: np.random.Generator,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        for p in (policy, logger):
            if isinstance(p, PrivilegedPolicy):
                raise ValueError(f"{p.name!r} sees hidden shopper state: it cannot serve a shop")
        self.policy, self.logger, self.exploration = policy, logger, exploration
        self.share, self.rng = share, rng
        self.feature_names = None if feature_names is None else list(feature_names)
        self.name = f"{policy.name} among {logger.name}"
        self._cohorts: list[NDArray[np.bool_]] = []

    def bind(self, core: ShopperCore, seed: int) -> None:
        """A cohort of ``core.n`` shoppers starts: assign them."""
        self._assign(core.n)

    def _assign(self, n: int) -> None:
        self._cohorts.append(self.rng.random(n) < self.share)

    @property
    def arms(self) -> NDArray[np.bool_]:
        return np.concatenate(self._cohorts) if self._cohorts else np.zeros(0, dtype=bool)

    def act(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        if not self._cohorts or len(self._cohorts[-1]) != len(obs):
            self._assign(len(obs))
        mine = self._cohorts[-1]
        # both see every row, as each would alone (a policy may depend on the batch)
        own = np.asarray(self.policy.act(obs, mask), dtype=np.int64)
        probs = self.exploration.probabilities(self.logger, obs, mask, self.feature_names)
        theirs = draw_actions(probs, self.rng)
        return np.where(mine, own, theirs)


def seeds(seed: int, replicates: int) -> list[int]:
    """The run seeds of the replicates: fixed by ``seed`` alone."""
    states = np.random.SeedSequence(seed).generate_state(replicates, dtype=np.uint32)
    return [int(s) for s in states]


def _paired(
    scenario: Scenario,
    policy: Policy,
    logger: Policy,
    exploration: Exploration,
    n_shoppers: int,
    share: float,
    run_seeds: Sequence[int],
) -> NDArray[np.float64]:
    """Per replicate: the policy's shoppers' mean profit alone and among the logger's,
    per 1,000 journeys, ``(replicates, 2)``."""
    names = [f.name for f in feature_schema(scenario)]
    out = np.zeros((len(run_seeds), 2))
    for r, run_seed in enumerate(run_seeds):
        alone = run_policy(scenario, policy, n_shoppers, run_seed)
        rng = np.random.default_rng([run_seed, ARM_STREAM])
        mixed = AmongLogger(policy, logger, exploration, share, rng, names)
        among = run_policy(scenario, mixed, n_shoppers, run_seed)
        arm = mixed.arms
        if not arm.any():  # a tiny run drew no shopper for the policy: take one
            arm[0] = True
        out[r] = 1000.0 * alone.profit[arm].mean(), 1000.0 * among.profit[arm].mean()
    return out


def _interval(values: NDArray[np.float64], confidence: float) -> Estimate:
    """The mean of the replicates' ``values`` and its Student interval."""
    mean = float(values.mean())
    scale = float(values.std(ddof=1) / math.sqrt(len(values)))
    if scale == 0.0 or not math.isfinite(scale):
        low = high = mean
    else:
        low, high = (float(x) for x in stats.t.interval(confidence, len(values) - 1, mean, scale))
    return Estimate(round(mean, 6), round(low, 6), round(high, 6))


def measure_interference(
    scenario: Scenario,
    policy: Policy,
    logger_policy: Policy,
    exploration: Exploration,
    settings: InterferenceSettings | None = None,
) -> Interference:
    """How much more (or less) ``policy`` earns alone on ``scenario`` than among the
    shoppers of ``logger_policy`` exploring with ``exploration``; see the module
    docstring. Measured once per (scenario, policy, logger), it corrects any log of that
    logger (:func:`corrected`).

    Raises:
        ValueError: bad sizes, a share outside (0, 1), a privileged policy.
    """
    settings = settings or InterferenceSettings()
    n_shoppers, replicates, seed = settings.n_shoppers, settings.replicates, settings.seed
    share, confidence = settings.share, settings.confidence
    run_seeds = seeds(seed, replicates)
    args = (policy, logger_policy, exploration, n_shoppers, share, run_seeds)
    full = _paired(scenario, *args)
    correction = full[:, 0] - full[:, 1]
    parts, without = {}, {}
    # without the budget is always measured: a policy evaluated under its own budget
    # takes the correction without it (summarise)
    components = [c for c in shared_state(scenario) if settings.attribute or c == BUDGET]
    for component in components:
        off = _paired(switched_off(scenario, component), *args)
        rest = off[:, 0] - off[:, 1]
        without[component] = _interval(rest, confidence)
        parts[component] = _interval(correction - rest, confidence)
    return Interference(
        scenario=scenario.name,
        policy=policy.name,
        logger=logger_policy.name,
        exploration=exploration.to_text(),
        share=share,
        n_shoppers=n_shoppers,
        replicates=replicates,
        seed=seed,
        confidence=confidence,
        alone=_interval(full[:, 0], confidence),
        among_logger=_interval(full[:, 1], confidence),
        correction=_interval(correction, confidence),
        components=parts,
        without=without,
    )


def _half_widths(e: Estimate) -> tuple[float, float] | None:
    if e.estimate is None or e.low is None or e.high is None:
        return None
    return e.estimate - e.low, e.high - e.estimate


def corrected(plain: Estimate, interference: Interference | Estimate) -> Estimate:
    """``plain`` (a reweighted profit per 1,000 journeys) plus the correction, its interval
    the two half-widths in quadrature on each side (either without an interval: the
    other's). None figures stay None."""
    fix = interference.correction if isinstance(interference, Interference) else interference
    if plain.estimate is None or fix.estimate is None:
        return Estimate(None, None, None)
    point = plain.estimate + fix.estimate
    a, b = _half_widths(plain), _half_widths(fix)
    if a is None and b is None:
        return Estimate(round(point, 6), None, None)
    lo = math.hypot(*(w[0] for w in (a, b) if w is not None))
    hi = math.hypot(*(w[1] for w in (a, b) if w is not None))
    return Estimate(round(point, 6), round(point - lo, 6), round(point + hi, 6))


def _signed(e: Estimate) -> str:
    return interval_text(e.to_json(), "{:+,.0f}", bare_point=False)


def _holds_zero(e: Estimate) -> bool:
    return e.low is not None and e.high is not None and e.low <= 0.0 <= e.high


def cause(measured: Interference) -> str:
    """How large the correction is and which components carry it, in words."""
    total = measured.correction
    pct = round(100 * measured.confidence)
    size = f"{_signed(total)} per 1,000 journeys ({pct}% interval)"
    if _holds_zero(total) and total.low == total.high:
        return f"{size}: shoppers' shared state does not change this policy's outcome"
    if _holds_zero(total):
        return f"{size}: too small to tell from 0 with {measured.replicates} replicates"
    if not measured.components:
        return f"{size}; not attributed to components"
    point = total.estimate or 0.0
    carrying = sorted(
        (k for k, v in measured.components.items() if not _holds_zero(v)),
        key=lambda k: -abs(measured.components[k].estimate or 0.0),
    )
    if not carrying:
        return (
            f"{size}; switched off one at a time, no component changes it measurably: "
            f"{', '.join(COMPONENTS[k] for k in measured.components)} stand in for one another"
        )
    parts = [
        f"{COMPONENTS[k]}: {(measured.components[k].estimate or 0.0):+,.0f} of {point:+,.0f}"
        for k in carrying
    ]
    return f"{size}, carried by {'; '.join(parts)}"


def plain_figure(result: PolicyEstimates) -> tuple[str, Estimate] | None:
    """The reweighting's profit per 1,000 journeys the correction applies to, and its
    basis (``logged eligibility``, ``own budget`` or ``both, spanned``); None: no profit
    estimate."""
    figure = result.recommended.outputs.get(PROFIT_KEY)
    if figure is None:
        return None
    block = result.budget
    if block is not None and block.evaluated_under in (budget.OWN, budget.SPANNED):
        return block.evaluated_under, figure
    return budget.LOGGED, figure


def _without_budget(measured: Interference) -> Estimate:
    """The correction measured with the campaign budget switched off (0 without a
    budget): the part a figure under the policy's own budget still lacks."""
    return measured.without.get(BUDGET, Estimate(0.0, 0.0, 0.0))


def _spanned(block: BudgetSummary, measured: Interference) -> tuple[Estimate, Estimate] | None:
    """For a budget verdict that spans both evaluations: the correction applied to the
    point (the budget-off one where the spend estimate fits the allowance, the whole one
    where it does not) and the corrected figure, its interval stretched over both
    corrected evaluations. None: the block lacks either figure."""
    own, logged = block.own_budget_profit_per_1000, block.logged_eligibility_profit_per_1000
    if own is None or logged is None:
        return None
    without = _without_budget(measured)
    on_own, on_logged = corrected(own, without), corrected(logged, measured.correction)
    fits = budget.judge(block.allowance_per_1000, block.spend_per_1000).likely_fits
    if fits is False:
        return measured.correction, budget.stretch(on_logged, on_own)
    return without, budget.stretch(on_own, on_logged)


def summarise(result: PolicyEstimates, measured: Interference) -> InterferenceSummary | None:
    """A policy's plain figure beside the figure corrected by ``measured``; see the
    module docstring for which plain figure and which correction. None: the result has
    no profit estimate."""
    plain = plain_figure(result)
    if plain is None:
        return None
    basis, figure = plain
    applied = measured.correction
    words = cause(measured)
    if basis == budget.OWN:
        applied = _without_budget(measured)
        words += (
            "; evaluated under its own budget, the budget's part is the log's to answer: "
            f"the rest, {_signed(applied)}, is applied"
        )
    result_figure = corrected(figure, applied)
    if basis == budget.SPANNED and result.budget is not None:
        both = _spanned(result.budget, measured)
        if both is not None:
            applied, result_figure = both
            words += (
                "; the log cannot tell whether its own budget would have rationed it: the "
                "figure under its own budget is corrected by the part without the budget, "
                "the one on the logged eligibility by the whole, and the interval holds both"
            )
    return InterferenceSummary(
        measured=measured,
        basis=basis,
        plain=figure,
        applied=applied,
        corrected=result_figure,
        cause=words,
    )
