"""From a log on disk and policy strings to an off-policy evaluation: what ``ope`` runs.

:func:`evaluate_logs` reads the log (a file or a folder; :func:`agents.logs.read_log`),
finds the scenario that gives the named policies and, for a log without metadata, the
features and actions (the one given, else the one the log's metadata names, if it is a
shipped or ``CONCEDE_SCENARIO_DIR`` scenario), builds the policies
(:func:`agents.registry.build_policies`) and evaluates them
(:func:`experiments.offpolicy.evaluate_offpolicy`).

Every way the input can be wrong raises one of :data:`INPUT_ERRORS`, whose message says
what is wrong: the app turns them into exit status 2.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from agents.baselines import RuleError
from agents.logs import LogReadError, LogSchemaError, LogValidationError, read_log
from agents.registry import PolicySpecError, UnknownPolicyError, build_policies
from agents.serving.runtime import PolicyInputError, PolicyLoadError
from envs.observation import feature_schema
from envs.scenario import Scenario, ScenarioError
from envs.scenario_files import load_scenario
from experiments.offpolicy.data import MissingFeaturesError
from experiments.offpolicy.evaluation import OPESettings, evaluate_offpolicy
from experiments.offpolicy.result import OPEResult
from experiments.offpolicy.targets import PolicyMismatchError

INPUT_ERRORS: tuple[type[Exception], ...] = (
    LogReadError,
    LogSchemaError,
    LogValidationError,
    UnknownPolicyError,
    RuleError,
    ScenarioError,
    PolicySpecError,
    PolicyLoadError,
    PolicyInputError,
    PolicyMismatchError,
    MissingFeaturesError,
)


def evaluate_logs(
    logs: str | os.PathLike[str],
    policies: Sequence[str],
    *,
    scenario: Scenario | None = None,
    settings: OPESettings | None = None,
    tracking_uri: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> OPEResult:
    """The off-policy evaluation of ``policies`` (strings, see
    :mod:`agents.registry`) on the log at ``logs``; the result of
    :func:`experiments.offpolicy.evaluate_offpolicy`, its ``warnings`` including a
    scenario whose digest differs from the log's.

    Raises:
        one of :data:`INPUT_ERRORS`, saying what is wrong with the input.
    """
    if not policies:
        raise PolicySpecError("no policy to evaluate: give policies=[...]")
    log = read_log(logs, scenario=scenario)
    notes: list[str] = []
    market = scenario
    if market is None and log.spec.scenario:
        market = _shipped(log.spec.scenario)
    if market is not None and log.spec.scenario_digest not in (None, market.digest()):
        notes.append(
            f"the log was written on scenario {log.spec.scenario!r} with digest "
            f"{str(log.spec.scenario_digest)[:12]}..., the policies are built for "
            f"{market.name!r} with digest {market.digest()[:12]}...: the market has changed "
            "since the log was written"
        )
    if market is not None:
        notes.extend(shared_state_warnings(market, budget_logged=log.spec.withheld))
    if market is not None and market.action_names != log.spec.actions:
        raise PolicyMismatchError(
            f"scenario {market.name!r} has the actions {list(market.action_names)}, the log "
            f"{list(log.spec.actions)}: give the scenario the log was written on"
        )
    evaluated = build_policies(
        policies,
        market,
        actions=log.spec.actions,
        tracking_uri=tracking_uri,
        privileged=False,
    )
    names = None if market is None else [f.name for f in feature_schema(market)]
    result = evaluate_offpolicy(
        log, evaluated, feature_names=names, settings=settings, progress=progress
    )
    return result.with_warnings_first(notes)


def shared_state_warnings(scenario: Scenario, *, budget_logged: bool = False) -> list[str]:
    """What makes one shopper's treatment change another's in ``scenario``: off-policy
    evaluation assumes it does not, so each is a bias no interval shows. A campaign
    budget is not named when the log says what it withheld (``budget_logged``): each
    policy's result then says under whose budget it was evaluated."""
    out = []
    if scenario.campaign_budget_per_1000 is not None and not budget_logged:
        out.append(
            f"scenario {scenario.name!r} shares a campaign budget between shoppers, and the "
            "log does not say which offers the budget withheld (withheld_<action> columns): "
            "the log's eligible actions reflect what the logger spent, so a policy that "
            "would spend differently is evaluated under the logger's budget, not its own"
        )
    if scenario.strategic.strength > 0.0:
        out.append(
            f"in scenario {scenario.name!r} shoppers learn to wait for deals from how often "
            "hesitating was rewarded: the logged shoppers learned it from the logger, and a "
            "policy that rewards hesitation less (or more) would meet fewer (or more) of them"
        )
    return out


def _shipped(name: str) -> Scenario | None:
    """The shipped scenario called ``name``, or None if there is none."""
    try:
        return load_scenario(name)
    except (ScenarioError, FileNotFoundError, ValueError):
        return None
