"""A fit that reaches its minimum: the global stage, continuation from lower profiled points,
the parallel evaluator, honest intervals, the wider presets and the trust verdict."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from envs.scenario_files import load_scenario
from experiments.calibration.convergence import (
    CONTINUATIONS,
    GLOBAL_POINTS,
    Converged,
    confirmed,
    converged_fit,
)
from experiments.calibration.intervals import FLAT_RISE, Direction, intervals
from experiments.calibration.parallel import Evaluator
from experiments.calibration.parameters import WIDE, Parameter, parameter, resolve
from experiments.calibration.trust import CARE, DISTRUST, FIT, REFIT, TRUST, verdict
from experiments.calibration.zoo import start_for, zoo

DEFAULT = load_scenario("default")


def _param(name: str, low: float = -50.0, high: float = 50.0, scale: float = 1.0) -> Parameter:
    return Parameter(name, low, high, scale, False, lambda s: 0.0, lambda s, v: s)


@dataclass
class _Linear:
    """A linear least-squares problem with the objective's interface: residuals and
    parameters (what :func:`converged_fit` reads)."""

    slope: np.ndarray
    truth: np.ndarray
    params: tuple[Parameter, ...]

    def residuals(self, x: np.ndarray) -> np.ndarray:
        return self.slope @ (np.asarray(x) - self.truth)


def _problem(seed: int, k: int = 3) -> _Linear:
    rng = np.random.default_rng(seed)
    truth = rng.uniform(-2, 2, k)
    slope = 3.0 * rng.normal(size=(30, k))
    return _Linear(slope, truth, tuple(_param(f"p{i}") for i in range(k)))


@pytest.mark.parametrize("seed", [0, 1])
def test_a_fit_stopped_short_continues_from_the_lower_profiled_point(seed: int) -> None:
    problem = _problem(seed)
    start = problem.truth + 25.0  # 25 scales away: one local round cannot get there
    with Evaluator(problem.residuals) as evaluate:
        done = converged_fit(problem, start, np.random.default_rng(seed), evaluate, 1)  # type: ignore[arg-type]
    rounds = [s for s in done.stages if s["stage"] != "global"]
    assert any(s["stage"].startswith("continued") for s in rounds), done.stages
    assert rounds[0]["lower_profiled_points"] > 0
    # the last profiled round is the one kept (a continuation that ends no lower than it
    # stops the fit without a profile of its own)
    profiled = [s for s in rounds if "lower_profiled_points" in s]
    assert done.converged and profiled[-1]["lower_profiled_points"] == 0
    np.testing.assert_allclose(done.fit.x, problem.truth, atol=0.05)
    assert not any(d.falls for d in done.directions)


def test_a_far_start_runs_the_global_stage_and_a_near_one_does_not() -> None:
    problem = _problem(3)
    far = problem.truth + 4.0
    near = problem.truth + 0.01
    for start, expected in ((far, True), (near, False)):
        with Evaluator(problem.residuals) as evaluate:
            done = converged_fit(
                problem,  # type: ignore[arg-type]
                start,
                np.random.default_rng(0),
                evaluate,
                global_rng=np.random.default_rng(1),
            )
        ran = [s for s in done.stages if s["stage"] == "global"]
        assert bool(ran) is expected, done.stages
        if expected:
            assert ran[0]["points"] == GLOBAL_POINTS
            assert ran[0]["chi_square_best"] < ran[0]["chi_square_start"]
        assert done.converged
        np.testing.assert_allclose(done.fit.x, problem.truth, atol=0.05)


def test_a_refit_goes_on_from_its_values_without_least_squares() -> None:
    problem = _problem(5)
    with Evaluator(problem.residuals) as evaluate:
        done = converged_fit(
            problem,  # type: ignore[arg-type]
            problem.truth + 0.5,
            np.random.default_rng(0),
            evaluate,
            local_only=True,
        )
    assert done.stages[0]["stage"] == "local"
    assert "refit" in done.fit.message and done.converged
    np.testing.assert_allclose(done.fit.x, problem.truth, atol=0.05)


def test_a_fit_that_never_settles_says_so() -> None:
    # a residual that keeps falling beyond every bound's reach: each round stops on its
    # budget, and after the last continuation the fit reports it did not converge
    params = (_param("a", -1e6, 1e6),)

    class Sliding:
        def __init__(self) -> None:
            self.params = params

        def residuals(self, x: np.ndarray) -> np.ndarray:
            return np.array([1000.0 - 3.0 * float(x[0])]) if x[0] < 300 else np.array([100.0])

    with Evaluator(Sliding().residuals) as evaluate:
        done = converged_fit(Sliding(), [0.0], np.random.default_rng(0), evaluate, 1)  # type: ignore[arg-type]
    assert not done.converged
    assert len([s for s in done.stages if s["stage"] != "global"]) == CONTINUATIONS + 1


def _trapped(problem: _Linear, radius: float = 1.9) -> Callable[[np.ndarray], np.ndarray]:
    """``problem``'s residuals plus a part the fit cannot remove, on one set of simulated
    shoppers whose chance dips make every point beyond ``radius`` scales from the truth
    look lower (as the rough part does to single simulations two scales away)."""
    rng = np.random.default_rng(11)
    projection = problem.slope @ np.linalg.pinv(problem.slope)
    floor = 10.0 * (np.eye(len(problem.slope)) - projection) @ rng.normal(size=len(problem.slope))

    def residuals(x: np.ndarray) -> np.ndarray:
        r = problem.residuals(x) + floor
        return r if np.linalg.norm(np.asarray(x) - problem.truth) < radius else 0.1 * r

    return residuals


def test_a_lower_profiled_point_that_other_shoppers_do_not_confirm_is_chance() -> None:
    problem = _problem(7)
    trapped = _trapped(problem)
    fresh_residuals = _trapped(problem, radius=np.inf)  # no dip on the other shoppers

    def fit_at_truth(others: list[Evaluator]) -> Converged:
        with Evaluator(trapped) as evaluate:
            return converged_fit(
                problem,  # type: ignore[arg-type]
                problem.truth,
                np.random.default_rng(0),
                evaluate,
                local_only=True,
                fresh=others,
            )

    with Evaluator(fresh_residuals) as fresh:
        done = fit_at_truth([fresh, fresh])
        assert fresh.evaluations > 0
    (round_,) = done.stages
    assert round_["lower_profiled_points"] > 0 and round_["confirmed_lower"] == 0
    assert done.converged and not any(d.falls for d in done.directions)
    np.testing.assert_allclose(done.fit.x, problem.truth, atol=1e-9)
    # without other shoppers to ask, the chance dips pass for a fit that has not finished
    alone = fit_at_truth([])
    assert alone.stages[0]["confirmed_lower"] > 0 and len(alone.stages) > 1


def test_a_side_is_confirmed_only_when_it_is_lower_on_every_set_of_shoppers() -> None:
    x, here, there = np.zeros(1), np.array([-2.0]), np.array([2.0])
    direction = Direction(0.1, np.array([1.0]), (-10.0, -10.0), (here, there))

    def on(values: dict[float, float]) -> Evaluator:
        return Evaluator(lambda p: np.array([np.sqrt(values[float(p[0])])]))

    lower_everywhere = on({0.0: 50.0, -2.0: 30.0, 2.0: 60.0})
    lower_once = on({0.0: 50.0, -2.0: 30.0, 2.0: 40.0})
    (checked,) = confirmed([direction], x, [lower_everywhere, lower_once])
    # the left side is 20 lower on both sets: it keeps the higher of the two, and falls;
    # the right side rises by 10 on one of them: it no longer falls
    assert checked.rise == pytest.approx((-20.0, 10.0))
    assert checked.falls and np.array_equal(checked.lowest(), here)
    (unchecked,) = confirmed([direction], x, [])
    assert unchecked.rise == direction.rise


def _square(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) ** 2


def test_the_evaluator_gives_the_same_residuals_on_workers() -> None:
    points = [np.array([float(i), -1.0]) for i in range(7)]
    with Evaluator(_square, workers=1) as one, Evaluator(_square, workers=2) as two:
        a, b = one.many(points), two.many(points)
        assert two.evaluations == 7
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="workers"):
        Evaluator(_square, workers=0)


def test_every_interval_holds_its_point_value_and_says_what_it_is() -> None:
    params = [_param("a", 0.0, 10.0), parameter("segments[*].help_value", DEFAULT)]
    x = np.array([9.9, 0.4])
    # draws that sit all on one side of the point (clipped at a bound, say)
    draws = np.column_stack([np.full(50, 8.0), np.linspace(-0.5, 0.2, 50)])
    flat = Direction(0.1, np.array([0.0, 1.0]), (1.0, 2.0))
    found = intervals(params, [5.0, 0.0], x, np.eye(2), draws, [flat])
    for p, v in zip(found, x, strict=True):
        assert p.low <= v <= p.high, p
    a, help_shift = found
    assert a.identified and a.text().startswith("9.9 [")
    assert not help_shift.identified and "within" in help_shift.reason
    assert help_shift.show(0.4) == "+0.4" and help_shift.shift
    # as the fit leaves it: at its start value, which its interval holds
    text = dataclasses.replace(help_shift, value=0.0, left=True).text()
    assert "left at its start value +0" in text and "the fit had put it at +0.4" in text
    # as the fit keeps it: the start value ruled out by the data
    ruled_out = dataclasses.replace(help_shift, start=-2.0)
    assert "kept at the fit's value" in ruled_out.text() and "+0.4" in ruled_out.text()


def test_a_falling_direction_is_not_called_flat() -> None:
    falling = Direction(0.1, np.array([1.0]), (-2.0 * FLAT_RISE, 10.0), (np.ones(1), np.ones(1)))
    flat = Direction(0.1, np.array([1.0]), (-0.5 * FLAT_RISE, 10.0))
    assert falling.falls and not falling.flat
    assert flat.flat and not flat.falls
    (p,) = intervals([_param("a")], [0.0], np.zeros(1), np.eye(1), np.zeros((5, 1)), [falling])
    assert not p.identified and "did not settle" in p.reason


def test_a_shift_adds_to_every_segment_and_a_factor_multiplies() -> None:
    shift = parameter("segments[*].help_value", DEFAULT)
    assert shift.shift and not shift.factor and shift.start(DEFAULT) == 0.0
    moved = shift.set(DEFAULT, 0.5)
    assert [s.help_value for s in moved.segments] == pytest.approx(
        [s.help_value + 0.5 for s in DEFAULT.segments]
    )
    hazard = parameter("segments[*].abandon_hazard", DEFAULT)
    assert hazard.factor and hazard.start(DEFAULT) == 1.0


def test_a_factor_reaches_a_shop_ten_times_apart_within_the_field_bounds() -> None:
    gift = parameter("segments[*].gift_sensitivity", DEFAULT)
    assert (gift.low, gift.high) == (0.1, 10.0)  # 0.2-0.5 may become 2-5, the field's top
    assert max(s.gift_sensitivity for s in gift.set(DEFAULT, 10.0).segments) == 5.0
    comeback = parameter("segments[*].return_probability", DEFAULT)
    smallest = min(s.return_probability for s in DEFAULT.segments)
    assert comeback.high == pytest.approx(0.99 / smallest) and comeback.high < 10.0


@pytest.mark.parametrize("shop", [DEFAULT, start_for(zoo(1, 4, DEFAULT)[0], DEFAULT)])
def test_the_wide_preset_joins_what_differs_between_shops(shop) -> None:  # type: ignore[no-untyped-def]
    wide = [p.name for p in resolve("wide", shop)]
    joined = [p.name for p in resolve(",".join(WIDE), shop)]
    assert wide == joined and len(wide) == len(set(wide))
    for name in (
        "segments[*].valuation_spread",
        "segments[*].abandon_hazard",
        "segments[*].tolerance",
        "segments[*].help_value",
        "segments[*].return_probability",
        "segments[*].return_decay",
    ):
        assert name in wide
    # the common level rides on the appeal: every segment's but the first moves apart
    first, *others = shop.segments
    assert [f"segments[{g.name}].hesitation" for g in others] == [
        n for n in wide if n.endswith("].hesitation")
    ]
    assert f"segments[{first.name}].hesitation" not in wide
    assert "segments[*].valuation" not in wide and "segments[*].hesitation" not in wide
    assert len(wide) == 3 + 2 * (len(shop.segments) - 1) + 4 + 2 + 5


def _summary(
    within: float,
    rms: float,
    converged: bool = True,
    left: tuple = (),
    refit_converged: bool | None = None,
) -> dict:
    optimiser = {FIT: {"converged": converged, "stages": [{"stage": "local"}]}}
    if refit_converged is not None:
        optimiser[REFIT] = {"converged": refit_converged, "stages": [{"stage": "local"}]}
    return {
        "held_out": {"targets": 40, "within_95": within, "rms_z": rms},
        "in_fit": {"targets": 40, "within_95": 1.0, "rms_z": 0.5},
        "optimiser": optimiser,
        "unidentified": list(left),
    }


@pytest.mark.parametrize(
    ("summary", "level"),
    [
        (_summary(0.95, 1.1), TRUST),
        (_summary(0.95, 1.1, left=("segments[*].tolerance",)), TRUST),
        (_summary(0.95, 2.5), CARE),
        (_summary(0.80, 1.3), CARE),
        (_summary(0.60, 3.0), DISTRUST),
        (_summary(0.97, 1.0, converged=False), DISTRUST),
        # the scenario takes the refit's values: its optimiser's end is the one read
        (_summary(0.97, 1.0, converged=False, refit_converged=True), TRUST),
        (_summary(0.97, 1.0, converged=True, refit_converged=False), DISTRUST),
    ],
)
def test_the_trust_verdict_reads_agreement_and_convergence(summary: dict, level: str) -> None:
    v = verdict(summary)
    assert v.level == level
    assert any("held-out targets" in r for r in v.reasons)
    if summary["unidentified"]:
        assert any("not pinned by the data" in r for r in v.reasons)
    read = "the refit without the unidentified" if REFIT in summary["optimiser"] else "the fit"
    assert any(r.startswith("the optimiser") and read in r for r in v.reasons)
    assert v.lines()[0].endswith(level.upper())


def test_a_continuation_that_ends_no_lower_stops_the_fit_at_the_best_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    params = (_param("a"),)

    def residuals(x: np.ndarray) -> np.ndarray:  # every profiled point is lower
        return np.array([10.0 if np.allclose(x, 0.0) else 1.0])

    ends = iter([10.0, 20.0])  # the smoothed residual each round ends with

    def steps(params, residuals, fit, rng):  # type: ignore[no-untyped-def]
        end = next(ends)
        return dataclasses.replace(fit, residuals=np.array([end]), jacobian=np.ones((1, 1))), False

    monkeypatch.setattr("experiments.calibration.convergence.smoothed_fit", steps)
    problem = dataclasses.make_dataclass("P", [("params", tuple)])(params)
    with Evaluator(residuals) as evaluate:
        done = converged_fit(problem, [0.0], np.random.default_rng(0), evaluate, local_only=True)  # type: ignore[arg-type]
    first, second = done.stages
    assert first["confirmed_lower"] > 0 and "ended" in second and "chi_square" not in second
    assert done.fit.residuals[0] == 10.0 and not done.converged
