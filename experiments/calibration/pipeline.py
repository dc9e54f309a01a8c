"""One fit from start to end: targets, least squares, intervals, identifiability, held-out.

:func:`calibrate` fits ``params`` of a starting scenario to a shop's data:

1. the data's targets, per journey; a seeded share of journeys is held out;
2. least squares on common random numbers (:mod:`.objective`) from the start values (or
   from the best point of a global design when the start is far from the data), ended
   by Gauss-Newton steps on regressions of the residuals over designs around the fit
   (:mod:`.smoothing`: past the dips of the objective's rough part), continued from any
   lower point the profile finds (:mod:`.convergence`);
3. 95% intervals by the bootstrap over journeys, and the parameters the data does not
   pin down (:mod:`.intervals`);
4. a parameter not identified goes back to its start value when its interval holds it
   and the fit had settled along it (the data cannot tell the start from the fit), and
   the others are fitted again without those (their intervals recomputed; after a far
   start's fit, by Gauss-Newton steps from its values); one whose start the data rules
   out keeps the fit's value, flagged. The bootstrap replicates of the first fit, of
   every parameter together, are kept: what the data leaves open, the parameters it does
   not pin across their whole spread (:mod:`.forecast` runs policies on them);
5. observed against simulated for every target, on the fitted journeys and on the held-out
   ones, for the fitted scenario and the start (:mod:`.holdout`).

The result holds everything the fitted YAML (:mod:`.scenario_file`) and the fit report
(:mod:`.report`) need, and the verdict on trusting it for choosing a policy
(:mod:`.trust`). All randomness comes from ``seed``: the simulations, the split, the
bootstrap, and (from its own stream) the global stage. ``workers`` processes simulate
the candidates (:mod:`.parallel`); the figures do not depend on it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.scenario import Scenario
from experiments.calibration.convergence import (
    COARSE,
    CONFIRM_SEEDS,
    Converged,
    converged_fit,
)
from experiments.calibration.holdout import Comparison, compare, summary
from experiments.calibration.intervals import (
    Interval,
    bootstrap_deltas,
    bootstrap_draws,
    intervals,
)
from experiments.calibration.objective import (
    Array,
    Objective,
    ShopData,
    Simulator,
    objective,
)
from experiments.calibration.parallel import Evaluator
from experiments.calibration.parameters import Parameter, apply
from experiments.calibration.targets import TargetTable, holdout_mask
from experiments.calibration.trust import FIT, REFIT, Verdict, verdict

CHECK_SEED_OFFSET = 7  # the comparison runs on other simulated shoppers than the fit
# a lower profiled point is confirmed on others still (sessions on one seed, logs on the next)
CONFIRM_SEED_OFFSET = 101
GLOBAL_STREAM = 1  # the global stage's generator: seeded apart from the fit's own


def check_targets(simulator: Simulator, scenario: Scenario) -> TargetTable:
    """The targets of ``scenario`` simulated on the comparison's shoppers (the fit's seed
    plus :data:`CHECK_SEED_OFFSET`): every scenario a fit is compared on meets the same."""
    return simulator.targets(scenario, seed=simulator.seed + CHECK_SEED_OFFSET)


@dataclass
class CalibrationResult:
    """A finished fit: the scenarios, each parameter's interval, the comparisons."""

    start: Scenario
    fitted: Scenario
    params: list[Interval]
    in_fit: list[Comparison]
    held_out: list[Comparison]
    journeys: dict[str, int]
    evaluations: int
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    optimiser: dict[str, Any] = field(default_factory=dict)  # how each least squares ended
    objective: Objective | None = field(default=None, repr=False)  # of every parameter
    # the first fit's bootstrap replicates of every parameter, (replicates, parameters):
    # the fitted scenario is one point of them, an unidentified parameter's start value
    # inside its spread
    replicates: Array | None = field(default=None, repr=False)
    # the shop's journeys held out of the fit, and the simulator of its comparisons
    held_out_data: TargetTable | None = field(default=None, repr=False)
    simulator: Simulator | None = field(default=None, repr=False)

    def held_out_agreement(self, scenario: Scenario) -> dict[str, Any]:
        """:func:`.holdout.summary` of another ``scenario`` on the held-out journeys,
        simulated on the same shoppers as the fitted scenario's comparison: in a benchmark
        that knows the true scenario, the agreement the truth itself reaches on these data
        (the share within 95% is a noisy count: the truth misses some targets too)."""
        if self.held_out_data is None or self.simulator is None:
            raise ValueError("this result keeps no held-out journeys to compare with")
        simulated = check_targets(self.simulator, scenario)
        return summary(compare(self.held_out_data, simulated, simulated))

    def chi_square(self, values: Sequence[float]) -> float:
        """The fit's objective (sum of squared residuals over the fitted journeys) at
        ``values`` of every parameter, in order: compare the fit with another candidate."""
        if self.objective is None:
            raise ValueError("this result keeps no objective")
        return float(np.sum(self.objective.residuals(values) ** 2))

    @property
    def unidentified(self) -> list[Interval]:
        return [p for p in self.params if not p.identified]

    def summary(self) -> dict[str, Any]:
        """The figures of the fit as one JSON-ready mapping, with the verdict on trusting
        it for choosing a policy (:mod:`.trust`)."""
        out = {
            "start": self.start.name,
            "fitted": self.fitted.name,
            "parameters": {
                p.name: {
                    "start": p.start,
                    "value": p.value,
                    "low": p.low,
                    "high": p.high,
                    "identified": p.identified,
                    "factor": p.factor,
                    "shift": p.shift,
                    "fitted": p.fitted if np.isfinite(p.fitted) else None,
                    "reason": p.reason,
                }
                for p in self.params
            },
            "unidentified": [p.name for p in self.unidentified],
            "in_fit": summary(self.in_fit),
            "held_out": summary(self.held_out) if self.held_out else None,
            "journeys": self.journeys,
            "evaluations": self.evaluations,
            "seconds": round(self.seconds, 2),
            "settings": self.settings,
            "optimiser": self.optimiser,
        }
        out["trust"] = verdict(out).to_json()
        return out

    @property
    def verdict(self) -> Verdict:
        """Whether to trust the fitted scenario for choosing a policy, and why."""
        return verdict(self.summary())


def _fit_once(
    start: Scenario,
    params: Sequence[Parameter],
    x0: Sequence[float],
    data_targets: Any,
    simulator: Simulator,
    rng: np.random.Generator,
    replicates: int,
    max_evaluations: int,
    workers: int,
    global_rng: np.random.Generator,
    local_only: bool = False,
) -> tuple[Converged, list[Interval], Objective, Array]:
    obj = objective(start, params, data_targets, simulator)
    if not obj.used.any():
        raise ValueError(
            "no target of the data can be fitted: the data lacks what the targets need"
        )
    with ExitStack() as stack:
        evaluate = stack.enter_context(Evaluator(obj.residuals, workers))
        coarse: list[Evaluator] = []

        def coarse_objective() -> tuple[Objective, Evaluator]:
            """Built only for a far start (it simulates the start once)."""
            rough = objective(start, params, data_targets, coarse_simulator(simulator))
            coarse.append(stack.enter_context(Evaluator(rough.residuals, workers)))
            return rough, coarse[-1]

        fresh = [
            stack.enter_context(Evaluator(other.residuals, workers))
            for other in confirming(obj, simulator)
        ]
        done = converged_fit(
            obj,
            x0,
            rng,
            evaluate,
            max_evaluations,
            global_rng,
            coarse_objective,
            local_only,
            fresh,
        )
        # a coarse simulation costs a fraction of a full one: counted as that fraction
        evaluations = (
            evaluate.evaluations
            + sum(f.evaluations for f in fresh)
            + sum(c.evaluations for c in coarse) // COARSE
        )
    ls = done.fit
    sim = obj.table(ls.x)
    deltas = bootstrap_deltas(data_targets, sim, obj.names, obj.used, rng, replicates)
    starts = [p.start(start) for p in params]
    draws = bootstrap_draws(params, ls.x, ls.jacobian, obj.sigma[obj.used], deltas)
    found = intervals(params, starts, ls.x, ls.jacobian, draws, done.directions)
    done.fit = dataclasses.replace(ls, evaluations=int(evaluations))
    return done, found, obj, draws


def confirming(obj: Objective, simulator: Simulator) -> list[Objective]:
    """``obj`` on :data:`.convergence.CONFIRM_SEEDS` other sets of simulated shoppers (the
    same observed targets and weights), that confirm a lower profiled point."""
    return [
        dataclasses.replace(
            obj,
            simulator=dataclasses.replace(
                simulator, seed=simulator.seed + CONFIRM_SEED_OFFSET + 2 * k
            ),
            kept={},
        )
        for k in range(CONFIRM_SEEDS)
    ]


def coarse_simulator(simulator: Simulator) -> Simulator:
    """``simulator`` on :data:`.convergence.COARSE` times fewer shoppers and journeys."""
    return dataclasses.replace(
        simulator,
        n_shoppers=max(1, simulator.n_shoppers // COARSE),
        n_journeys=max(1, simulator.n_journeys // COARSE),
    )


def _ended(done: Converged) -> dict[str, Any]:
    """How a fit ended: converged or not, each stage's scipy status and message, the
    chi-square."""
    ls = done.fit
    return {
        "converged": done.converged,
        "status": ls.status,
        "message": ls.message,
        "evaluations": ls.evaluations,
        "chi_square": round(float(np.sum(ls.residuals**2)), 2),
        "stages": done.stages,
    }


def calibrate(
    start: Scenario,
    data: ShopData,
    params: Sequence[Parameter],
    *,
    name: str | None = None,
    n_shoppers: int = 40_000,
    n_journeys: int = 20_000,
    seed: int = 2024,
    holdout: float = 0.2,
    replicates: int = 300,
    max_evaluations: int = 80,
    drop_unidentified: bool = True,
    workers: int = 1,
) -> CalibrationResult:
    """Fit ``params`` of ``start`` to ``data``; see the module docstring. ``workers``
    processes simulate the candidates (the figures do not depend on it)."""
    clock = time.perf_counter()
    rng = np.random.default_rng(seed)
    global_rng = np.random.default_rng([seed, GLOBAL_STREAM])
    everything = data.targets(start)
    held = holdout_mask(everything.keys, holdout, seed)
    fit_part = everything.subset(~held)
    simulator = Simulator(data, n_shoppers, n_journeys, seed)
    x0 = [p.start(start) for p in params]

    def fit_once(
        which: Sequence[Parameter], x: Sequence[float], local_only: bool = False
    ) -> tuple[Converged, list[Interval], Objective, Array]:
        return _fit_once(
            start,
            which,
            x,
            fit_part,
            simulator,
            rng,
            replicates,
            max_evaluations,
            workers,
            global_rng,
            local_only,
        )

    done, found, obj, draws = fit_once(params, x0)
    ls = done.fit
    evaluations = ls.evaluations
    optimiser = {FIT: _ended(done)}
    values = list(ls.x)
    # a parameter the data does not pin goes back to its start value when the data allows
    # that value (its interval holds it); a start outside it would move the fit off the
    # data, so the fit's value stays, flagged, with its bootstrap spread in the replicates
    # (a parameter on a direction the fit had not finished is not on a flat ridge: it too
    # keeps the fit's value)
    back = [
        i
        for i, p in enumerate(found)
        if not p.identified and p.settled and p.low <= p.start <= p.high
    ]
    # the replicates stay the first fit's, every parameter drawn together: a parameter
    # put back to its start value is no better known for that, and the refit's draws
    # (the others with it held there) would forecast as if it were
    if drop_unidentified and back:
        keep = [i for i in range(len(params)) if i not in back]
        values = list(x0)
        if keep:
            # after a far start's fit, the refit goes on from its values by Gauss-Newton
            # steps; near the start it reruns the least squares
            far = any(s["stage"] == "global" for s in done.stages)
            done2, refound, _, _ = fit_once([params[i] for i in keep], [ls.x[i] for i in keep], far)
            evaluations += done2.fit.evaluations
            optimiser[REFIT] = _ended(done2)
            for j, i in enumerate(keep):
                values[i] = float(done2.fit.x[j])
                found[i] = refound[j]
        for i in back:  # left at the start value, the interval of the fit kept to show why
            found[i] = dataclasses.replace(found[i], value=found[i].start, left=True)
            values[i] = found[i].start
    fitted = apply(start, params, values)
    fitted = fitted.replace(name=name or f"{start.name}_fitted")
    sim_fit, sim_start = check_targets(simulator, fitted), check_targets(simulator, start)
    in_fit = compare(fit_part, sim_fit, sim_start)
    held_part = everything.subset(held) if held.any() else None
    held_out = compare(held_part, sim_fit, sim_start) if held_part is not None else []
    return CalibrationResult(
        start=start,
        fitted=fitted,
        params=found,
        in_fit=in_fit,
        held_out=held_out,
        journeys={"fitted": int((~held).sum()), "held_out": int(held.sum())},
        evaluations=evaluations,
        seconds=time.perf_counter() - clock,
        settings={
            "n_shoppers": n_shoppers,
            "n_journeys": n_journeys,
            "seed": seed,
            "holdout": holdout,
            "replicates": replicates,
            "parameters": [p.name for p in params],
        },
        optimiser=optimiser,
        objective=obj,
        replicates=draws,
        held_out_data=held_part,
        simulator=simulator,
    )
