"""From a log on disk and policy strings to an off-policy evaluation: what ``ope`` runs.

:func:`evaluate_logs` reads the log (a file or a folder; :func:`agents.logs.read_log`),
finds the scenario that gives the named policies and, for a log without metadata, the
features and actions (the one given, else the one the log's metadata names, if it is a
shipped or ``CONCEDE_SCENARIO_DIR`` scenario), builds the policies
(:func:`agents.registry.build_policies`) and evaluates them
(:func:`experiments.offpolicy.evaluate_offpolicy`).

Given the shop's scenario (``scenario``) and ``interference`` settings, where that
scenario's shoppers share state (a campaign budget, shoppers learning to wait, a live-agent
desk), each policy's figure is also corrected for what no reweighting sees: the logged
shoppers lived in the shared state of the logger, not of the policy
(:mod:`experiments.offpolicy.interference`); the shared-state warnings then give its size.

Every way the input can be wrong raises one of :data:`INPUT_ERRORS`, whose message says
what is wrong: the app turns them into exit status 2.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from agents.baselines import RuleError
from agents.exploration import Exploration
from agents.logs import DecisionLog, LogReadError, LogSchemaError, LogValidationError, read_log
from agents.policy import Policy
from agents.registry import PolicySpecError, UnknownPolicyError, build_policies, build_policy
from agents.serving.runtime import PolicyInputError, PolicyLoadError
from envs.observation import feature_schema
from envs.scenario import Scenario, ScenarioError
from envs.scenario_files import load_scenario
from experiments.offpolicy.data import MissingFeaturesError
from experiments.offpolicy.evaluation import OPESettings, evaluate_offpolicy
from experiments.offpolicy.interference import (
    COMPONENTS,
    InterferenceSettings,
    measure_interference,
    shared_state,
    summarise,
)
from experiments.offpolicy.result import InterferenceSummary, OPEResult
from experiments.offpolicy.targets import PolicyMismatchError


class InterferenceInputError(ValueError):
    """The interference of shared state cannot be measured as asked: the logging policy
    is not known or cannot be run on the scenario; the message says what to give."""


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
    InterferenceInputError,
)


def evaluate_logs(
    logs: str | os.PathLike[str],
    policies: Sequence[str],
    *,
    scenario: Scenario | None = None,
    settings: OPESettings | None = None,
    tracking_uri: str | None = None,
    interference: InterferenceSettings | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> OPEResult:
    """The off-policy evaluation of ``policies`` (strings, see
    :mod:`agents.registry`) on the log at ``logs``; the result of
    :func:`experiments.offpolicy.evaluate_offpolicy`, its ``warnings`` including a
    scenario whose digest differs from the log's.

    With ``interference`` settings and a ``scenario`` whose shoppers share state, each
    policy's result also holds its figure corrected for that shared state (its
    ``interference`` block), measured against the log's logger and exploration (or those
    the settings give). A logger that is not known, or cannot be run, is a warning, or
    with ``interference.required`` an :class:`InterferenceInputError`.

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
    plan = None
    if scenario is not None and interference is not None and shared_state(scenario):
        try:
            logger, exploration = _logger(log, scenario, interference, tracking_uri)
            plan = _Plan(scenario, interference, logger, exploration)
        except InterferenceInputError as err:
            if interference.required:
                raise
            notes.append(str(err))
    result = evaluate_offpolicy(
        log, evaluated, feature_names=names, settings=settings, progress=progress
    )
    measured = {} if plan is None else plan.measure(result, evaluated, progress)
    if measured:
        results = {k: replace(v, interference=measured.get(k)) for k, v in result.results.items()}
        result = replace(result, results=results)
    if market is not None:
        said = shared_state_warnings(market, budget_logged=log.spec.withheld, measured=measured)
        if said and not measured and interference is not None and scenario is None:
            said.append(
                "give the shop's scenario (scenario=<name>) and ope measures how large this is"
            )
        notes.extend(said)
    return result.with_warnings_first(notes)


@dataclass(frozen=True)
class _Plan:
    """How the shared state's interference is measured: on ``scenario``, against
    ``logger`` exploring with ``exploration``."""

    scenario: Scenario
    settings: InterferenceSettings
    logger: Policy
    exploration: Exploration

    def measure(
        self, result: OPEResult, policies: Sequence[Policy], progress: Callable[[str], None]
    ) -> dict[str, InterferenceSummary]:
        """Each policy's plain figure in ``result`` beside its corrected one."""
        s, out = self.settings, {}
        for policy in policies:
            progress(
                f"measuring shared state on {self.scenario.name}: {policy.name} alone and "
                f"among {self.logger.name}'s shoppers ({s.replicates} x {s.n_shoppers:,} "
                "shoppers)"
            )
            measured = measure_interference(self.scenario, policy, self.logger, self.exploration, s)
            summary = summarise(result.results[policy.name], measured)
            if summary is not None:
                out[policy.name] = summary
        return out


def _logger(
    log: DecisionLog,
    scenario: Scenario,
    settings: InterferenceSettings,
    tracking_uri: str | None,
) -> tuple[Policy, Exploration]:
    """The logging policy and its exploration, built on ``scenario``: the settings' own,
    else the log's metadata's.

    Raises:
        InterferenceInputError: neither names them, or they cannot be built.
    """
    name = settings.logger or log.spec.logger
    what = (
        f"measuring what sharing state between shoppers (scenario {scenario.name!r}) does "
        "to the figures needs the policy that wrote the log and its exploration"
    )
    give = (
        "give interference.logger=<policy> (merchant_rules, rules:<file.yaml>, a policy "
        "directory...) and interference.exploration=<kind:value> (epsilon:0.1; epsilon:0 "
        "for none), or interference.enabled=false to skip the measurement"
    )
    if not name:
        raise InterferenceInputError(f"the log does not name its logging policy: {what}: {give}")
    try:
        if settings.exploration is not None:
            exploration = Exploration.from_text(settings.exploration)
        elif log.spec.exploration is not None and not settings.logger:
            exploration = Exploration.from_dict(log.spec.exploration)
        else:
            raise InterferenceInputError(
                f"the log does not say how {name!r} explored: {what}: {give}"
            )
        exploration.columns([f.name for f in feature_schema(scenario)])
    except (ValueError, KeyError, TypeError) as err:
        if isinstance(err, InterferenceInputError):
            raise
        raise InterferenceInputError(f"the logger's exploration: {err}; {give}") from None
    try:
        policy = build_policy(name, scenario, tracking_uri=tracking_uri)
    except (PolicySpecError, PolicyLoadError, PolicyInputError) as err:
        raise InterferenceInputError(
            f"the logging policy {name!r} cannot be run on scenario {scenario.name!r} ({err}): "
            f"{what}: {give}"
        ) from None
    return policy, exploration


def shared_state_warnings(
    scenario: Scenario,
    *,
    budget_logged: bool = False,
    measured: Mapping[str, InterferenceSummary] | None = None,
) -> list[str]:
    """What makes one shopper's treatment change another's in ``scenario``: off-policy
    evaluation assumes it does not, so each is a bias no interval shows. A campaign
    budget is not named when the log says what it withheld (``budget_logged``): each
    policy's result then says under whose budget it was evaluated. With the bias
    ``measured`` per policy, one warning gives its size instead."""
    if measured:
        components = [COMPONENTS[c] for c in shared_state(scenario)]
        sizes = "; ".join(f"{name}: {s.cause}" for name, s in measured.items())
        return [
            f"in scenario {scenario.name!r} shoppers share state ({', '.join(components)}): "
            "the logged shoppers lived in the logger's, which no reweighting sees. Measured "
            "there, each policy alone minus among the logger's shoppers, per policy: "
            f"{sizes}. The corrected figures add it; they assume the scenario's shared "
            "state is the shop's, the plain ones that shoppers do not affect one another"
        ]
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
