"""Whether to trust a fitted scenario for choosing a policy, in a few lines, and why.

A fitted scenario is only as good as its agreement with journeys it was not fitted to,
and a fit is only finished when the optimiser reached the objective's minimum.
:func:`verdict` reads a finished fit (:class:`.pipeline.CalibrationResult`) and says one
of three things:

- **trust it**: the optimiser converged (no profiled point beat the fit on every set of
  simulated shoppers it was tried on; the refit's optimiser when the parameters the data
  does not pin were put back to their start values and the others fitted again, since the
  scenario takes its values from that refit), and at least :data:`WITHIN` of the held-out
  targets (the fitted ones when nothing is held out) are within their 95% intervals,
  with a root mean square z-score of at most :data:`RMS_Z`;
- **use with care**: it converged and agrees with at least :data:`CARE_WITHIN` of the
  targets; the policies' forecast intervals carry the fit's uncertainty, but a target
  the scenario misses is a behaviour it does not reproduce;
- **do not trust it**: the fit did not converge, or it misses more targets than that.

Each verdict comes with its reasons: the agreement, how the optimiser ended, and the
parameters the data does not pin (the fitted scenario takes its start value for those
the data allows it, an assumption; the forecasts range over the values the data leaves
open, so a policy whose profit hinges on them has a wide interval).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WITHIN = 0.90  # share of held-out targets within 95% for "trust it"
CARE_WITHIN = 0.75  # ... and for "use with care"
RMS_Z = 1.5  # root mean square z-score for "trust it" (about 1 when the model fits)

TRUST, CARE, DISTRUST = "trust it", "use with care", "do not trust it"
FIT, REFIT = "fit", "refit without the unidentified"  # the optimiser's runs, by name


@dataclass(frozen=True)
class Verdict:
    """One of :data:`TRUST`, :data:`CARE`, :data:`DISTRUST`, and the reasons in words."""

    level: str
    reasons: tuple[str, ...]

    def lines(self) -> list[str]:
        """The verdict as console lines: the headline, then one reason per line."""
        head = f"for choosing a policy: {self.level.upper()}"
        return [head, *(f"  - {r}" for r in self.reasons)]

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "reasons": list(self.reasons)}


def verdict(summary: dict[str, Any]) -> Verdict:
    """The verdict on a fit from its :meth:`.pipeline.CalibrationResult.summary`."""
    part = "held_out" if summary.get("held_out") else "in_fit"
    figures = summary[part] or {}
    within, rms = figures.get("within_95"), figures.get("rms_z")
    which = "held-out" if part == "held_out" else "fitted (none held out)"
    reasons = []
    if within is None:
        agreement = 0.0
        reasons.append(f"no {which} target could be compared")
    else:
        agreement = within
        reasons.append(
            f"{within:.0%} of {figures['targets']} {which} targets within their 95% "
            f"intervals (needed: {WITHIN:.0%}), root mean square z {rms:.2f} "
            f"(about 1 when the scenario reproduces the shop; needed: at most {RMS_Z:g})"
        )
    optimiser = summary.get("optimiser", {})
    # the scenario's values are the refit's when there was one
    last = REFIT if REFIT in optimiser else FIT
    ended = optimiser.get(last, {})
    converged = bool(ended.get("converged", True))
    stages = ended.get("stages", [])
    restarts = sum(1 for s in stages if str(s.get("stage", "")).startswith("continued"))
    which_fit = "the fit" if last == FIT else "the refit without the unidentified parameters"
    if converged:
        how = (
            f"the optimiser reached a minimum: no profiled point beat {which_fit} on every "
            "set of simulated shoppers it tried"
        )
        if restarts:
            how += f" (after {restarts} continuation(s) from lower points the profile found)"
        reasons.append(how)
    else:
        reasons.append(
            f"the optimiser did not converge: the profile found points lower than {which_fit} "
            "on every set of simulated shoppers it tried, and continuing from them did not "
            "end it, so the fitted values are not the data's best"
        )
    left = summary.get("unidentified") or []
    if left:
        reasons.append(
            f"{len(left)} parameter(s) not pinned by the data ({', '.join(left)}): the "
            "fitted scenario keeps the start's value where the data allows it, and the "
            "forecasts range over the values the data leaves open"
        )
    if converged and agreement >= WITHIN and rms is not None and rms <= RMS_Z:
        level = TRUST
    elif converged and agreement >= CARE_WITHIN:
        level = CARE
    else:
        level = DISTRUST
    return Verdict(level, tuple(reasons))
