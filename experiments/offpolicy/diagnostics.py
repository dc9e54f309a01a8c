"""When not to trust an off-policy figure: the weights' diagnostics, and what they mean.

Per evaluated policy, from the journeys' final weights ``w`` (the product of the ratios
of the policy's to the logger's probabilities over the journey) and the support check:

- ``ess``: Kish's effective sample size ``(sum w)**2 / sum w**2``, how many journeys'
  worth of evidence the weighted log holds; ``ess_share`` = ess / journeys;
- ``step_ess`` and ``marginal_ess``: effective journeys *per decision*, the journeys'
  worth of Kish's ESS taken over each step's weights and averaged over the decisions
  (:func:`step_ess`), for the per-decision weights ``w_t`` and for the marginalised
  estimators' state-action weights ``u_t rho_t`` (:mod:`experiments.offpolicy.marginal`;
  None where not fitted). ``ess`` counts a journey's whole history at once and is the
  lower: a journey of ``T`` decisions carries ``T`` ratios in its final weight;
- ``max_weight_share``: the largest journey weight over the sum: how much one journey
  carries;
- ``matched_journeys``: share of journeys whose logged actions all agree with the policy
  (weight > 0);
- ``unsupported_decisions`` / ``unsupported_journeys``: share of decisions (journeys with
  at least one) where the policy chooses an action the logger gave probability 0 — the
  log holds nothing about those choices. An action the campaign budget withheld from the
  logger does not count here: :mod:`experiments.offpolicy.budget` accounts for it.

:func:`assess` turns them into a verdict (:class:`experiments.offpolicy.result.Trust`:
``trusted``, ``caution`` or ``not trustworthy``) and warnings in words. The thresholds
are the module's constants; below :data:`CAUTION_ESS` effective journeys the benchmark
(``concede bench ope``) saw the 95% intervals miss the simulator's truth
more often than 5% of the times.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from experiments.offpolicy.data import Journeys
from experiments.offpolicy.result import Diagnostics, Trust

TRUSTED, CAUTION, UNTRUSTED = Trust.TRUSTED, Trust.CAUTION, Trust.UNTRUSTED
MIN_ESS = 100.0  # below: too few effective journeys to say anything
CAUTION_ESS = 1000.0  # below, with reweighting at work: intervals too narrow (benchmark)
REWEIGHTED_SHARE = 0.5  # an ESS share below this: the weights, not the sample, set the ESS
LOW_ESS_SHARE = 0.01  # below: the log is a poor match for the policy
MAX_WEIGHT_SHARE = 0.05  # above: one journey drives the figure
ESTIMATED_SUPPORT_FLOOR = 5e-3  # an estimated probability below this counts as no support

FloatArray = NDArray[np.float64]


def diagnose(
    journeys: Journeys,
    w: FloatArray,
    target: FloatArray,
    logger_probs: FloatArray,
    support_source: str,
    withheld: NDArray[np.bool_] | None = None,
    marginal_weights: FloatArray | None = None,
) -> Diagnostics:
    """The diagnostics of a policy with per-row weights ``w`` and probabilities ``target``,
    given the logger's probabilities ``logger_probs`` of every action (logged or
    estimated, as ``support_source`` says), the actions the budget ``withheld`` and the
    marginalised estimators' state-action weights per row (None: not fitted)."""
    final = w[journeys.last_row]
    total = float(final.sum())
    squares = float((final**2).sum())
    ess = total**2 / squares if squares > 0 else 0.0
    floor = 0.0 if support_source == "logged probabilities" else ESTIMATED_SUPPORT_FLOOR
    lacking = (target > 0.0) & (logger_probs <= floor)
    if withheld is not None:
        lacking &= ~withheld
    unsupported = np.asarray(lacking.any(axis=1))
    by_journey = journeys.per_journey(unsupported.astype(np.float64)) > 0
    return Diagnostics(
        ess=ess,
        ess_share=ess / journeys.n_journeys,
        max_weight_share=float(final.max()) / total if total > 0 else 1.0,
        matched_journeys=float(np.mean(final > 0)),
        unsupported_decisions=float(unsupported.mean()),
        unsupported_journeys=float(by_journey.mean()),
        support_source=support_source,
        step_ess=step_ess(journeys, w),
        marginal_ess=None if marginal_weights is None else step_ess(journeys, marginal_weights),
    )


def step_ess(journeys: Journeys, weights: FloatArray) -> float:
    """Effective journeys per decision of the per-row ``weights``: at each step ``t``
    Kish's ``(sum w)**2 / sum w**2`` over the journeys still going, as a share of them;
    those shares averaged over the decisions (each step counts by its rows), times the
    journeys. 0 when every weight is 0."""
    rows = np.bincount(journeys.position, minlength=journeys.max_length).astype(np.float64)
    total = np.bincount(journeys.position, weights=weights, minlength=journeys.max_length)
    squares = np.bincount(journeys.position, weights=weights**2, minlength=journeys.max_length)
    ess = np.divide(total**2, squares, out=np.zeros_like(total), where=squares > 0)
    return float(ess.sum() / rows.sum() * journeys.n_journeys)


def assess(name: str, d: Diagnostics, estimated_propensities: bool) -> tuple[Trust, list[str]]:
    """The verdict on a policy's figures and the warnings, in words."""
    warnings: list[str] = []
    verdict: Trust = TRUSTED
    if d.unsupported_decisions > 0:
        verdict = UNTRUSTED
        warnings.append(
            f"{name}: in {d.unsupported_decisions:.1%} of decisions ({d.unsupported_journeys:.1%} "
            "of journeys) it chooses an action the logger never takes there (no support): "
            "the log holds nothing about those choices, so the importance-sampling figures "
            "leave them out and the doubly robust one guesses them from its value model. "
            "Do not trust these figures; log with exploration over those actions first."
        )
    if d.ess < MIN_ESS:
        verdict = UNTRUSTED
        warnings.append(
            f"{name}: the weighted log is worth only {d.ess:.0f} journeys (effective sample "
            f"size; {d.matched_journeys:.1%} of journeys agree with the policy throughout): "
            "too little to estimate from. Not trustworthy."
        )
    elif (d.ess < CAUTION_ESS and d.ess_share < REWEIGHTED_SHARE) or d.ess_share < LOW_ESS_SHARE:
        verdict = CAUTION if verdict == TRUSTED else verdict
        warnings.append(
            f"{name}: the weighted log is worth {d.ess:,.0f} journeys, {d.ess_share:.2%} of "
            f"those logged (the logger acted as this policy would throughout only "
            f"{d.matched_journeys:.1%} of journeys): the estimate rests on the reweighted "
            "journeys, and its interval is likely too narrow."
        )
    if d.max_weight_share > MAX_WEIGHT_SHARE:
        verdict = CAUTION if verdict == TRUSTED else verdict
        warnings.append(
            f"{name}: one journey carries {d.max_weight_share:.1%} of the total weight: the "
            "importance-sampling figures hang on it."
        )
    if estimated_propensities:
        verdict = CAUTION if verdict == TRUSTED else verdict
        warnings.append(
            f"{name}: the log has no propensities; they were ESTIMATED from the features, "
            "which assumes the logger decided on nothing else. The intervals include the "
            "estimate's own uncertainty, but not that assumption."
        )
    return verdict, warnings
