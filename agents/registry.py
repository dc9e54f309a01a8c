"""The one policy resolver: from what a user types to a batched policy, for every app.

Every app that takes policies (``experiments.evaluate``, ``experiments.ope``,
``experiments.simulate_logs``, the forecasts of ``experiments.calibrate``) resolves them
here, so each accepts the same strings (:data:`POLICY_STRINGS`):

- ``never``;
- ``always_<concession>``: one per catalogue entry (:class:`agents.baselines.AlwaysOffer`);
  ``always_<kind>`` picks the first entry of that kind (``always_percent_discount``), so
  that one list works on every scenario; ``always_*`` expands to the whole set;
- ``boulware``, ``linear``, ``conceder``: the time-based concession curves;
- a rule set shipped in ``conf/rules/`` by its name (``merchant_rules``), or any rule file
  as ``rules:<path.yaml>``;
- ``uplift``: uplift targeting learned from a randomised log
  (:mod:`agents.opponents.uplift`); ``bandit``: a contextual bandit learned online in the
  simulator (:mod:`agents.opponents.bandit`); both trained once per scenario and cached
  (:mod:`agents.opponents.cache`);
- ``oracle``: the hindsight oracle (:mod:`agents.oracle`); ``informed``: the informed
  bound (:mod:`agents.informed`): knows the shopper, not the dice. Both see hidden state,
  so only a simulator evaluation takes them (``privileged=True``); built by
  :func:`build_policies` with the other listed policies that the oracle's own plans do not
  cover as extra candidates;
- ``fixed:<action>``: always that action when eligible, else ``wait``
  (:class:`agents.baselines.FixedAction`), among the scenario's actions or those given
  (a log's: the arms of an A/B test, say, whose actions are no scenario's);
- a trained policy (:mod:`agents.trained`): a policy directory (``manifest.json`` and
  ``policy.onnx``), ``run:<MLflow run id>`` (a finished training run's model), or
  ``models:/<name>@<alias>`` / ``models:/<name>/<version>`` (a registered model). It must
  fit the scenario: the same actions, concessions and features, within the ranges it was
  trained on; stress-test it on any scenario of its catalogue.

Names, rule sets and ``always_*`` are built for a scenario; ``fixed:`` and trained
policies also without one (the evaluation of a log then checks them against the log).

Errors are one family, :class:`agents.policy.PolicySpecError`, each message saying what
is wrong: :class:`UnknownPolicyError` (lists the names that exist),
:class:`agents.policy.PolicyFitError` (a trained policy that does not fit the scenario,
naming the mismatch), :class:`agents.baselines.RuleError` (a rule set that does not fit),
and the base class for anything else (no such run, a directory that does not verify, a
privileged policy where none can be evaluated, a name without a scenario).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agents.baselines import (
    CURVE_EXPONENTS,
    AlwaysOffer,
    FixedAction,
    NeverOffer,
    RulePolicy,
    TimeCurvePolicy,
    available_rule_sets,
    load_rules,
)
from agents.informed import InformedBound
from agents.opponents.bandit import BanditSettings, train_bandit
from agents.opponents.cache import cached
from agents.opponents.lazy import TrainedOnDemand
from agents.opponents.uplift import UpliftSettings, train_uplift
from agents.oracle import Oracle
from agents.policy import Policy, PolicyFitError, PolicySpecError
from agents.trained import MODELS_PREFIX, RUN_PREFIX, is_trained, load_trained
from envs.scenario import Scenario

ORACLE = "oracle"
INFORMED = "informed"
UPLIFT = "uplift"
BANDIT = "bandit"
BOUNDS = (ORACLE, INFORMED)  # references that see hidden state: never a baseline
NEVER = "never"
ALWAYS_ALL = "always_*"
RULES_PREFIX = "rules:"
FIXED_PREFIX = "fixed:"
POLICY_STRINGS = (
    "a name (never, always_<concession> or always_<kind>, always_* for the whole set, "
    "boulware, linear, conceder, a rule set of conf/rules/ such as merchant_rules, uplift, "
    "bandit; oracle and informed in the simulator only), rules:<file.yaml>, "
    "fixed:<action>, or a trained policy: a policy directory (manifest.json and "
    "policy.onnx), run:<MLflow run id>, models:/<name>@<alias> or models:/<name>/<version>"
)
"""The accepted policy strings in one sentence, as the apps' docstrings list them."""
TRAINED_FORMS = ("<policy directory>", f"{RUN_PREFIX}<run id>", f"{MODELS_PREFIX}<name>@<alias>")

__all__ = [
    "POLICY_STRINGS",
    "PolicyFitError",
    "PolicySpecError",
    "UnknownPolicyError",
    "available_policies",
    "build_policies",
    "build_policy",
    "expand_names",
    "is_trained",
]


class UnknownPolicyError(PolicySpecError):
    """A policy name that no builder knows; the message lists the known names."""


def available_policies(scenario: Scenario, rules_folder: Path | None = None) -> list[str]:
    """Every name :func:`build_policy` accepts for ``scenario`` (kind aliases aside), then
    the forms of the other strings (``rules:<file.yaml>``, ``fixed:<action>``, the trained
    policies), which hold a ``<``."""
    return [
        NEVER,
        *(f"always_{c.name}" for c in scenario.concessions),
        ALWAYS_ALL,
        *CURVE_EXPONENTS,
        *available_rule_sets(rules_folder),
        f"{RULES_PREFIX}<file.yaml>",
        UPLIFT,
        BANDIT,
        INFORMED,
        ORACLE,
        f"{FIXED_PREFIX}<action>",
        *TRAINED_FORMS,
    ]


def needs_scenario(spec: str) -> bool:
    """True for the strings built for a scenario (names, rule sets), False for
    ``fixed:<action>`` and the trained policies."""
    return not spec.startswith(FIXED_PREFIX) and not is_trained(spec)


def expand_names(names: Sequence[str], scenario: Scenario) -> list[str]:
    """``names`` with ``always_*`` replaced by one name per catalogue entry, duplicates
    dropped (first occurrence kept)."""
    out: list[str] = []
    for name in names:
        items = [f"always_{c.name}" for c in scenario.concessions] if name == ALWAYS_ALL else [name]
        out.extend(i for i in items if i not in out)
    return out


def build_policy(
    name: str,
    scenario: Scenario | None,
    rules_folder: Path | None = None,
    *,
    actions: Sequence[str] | None = None,
    tracking_uri: str | None = None,
) -> Policy:
    """The policy ``name`` gives (any string of the module docstring but the oracle and the
    informed bound, which :func:`build_policies` builds with their candidates).

    ``scenario``: what names are built for and trained policies must fit (None: only
    ``fixed:`` and trained policies, unchecked). ``actions``: those ``fixed:<action>``
    chooses among (default: the scenario's). ``tracking_uri``: the MLflow store of
    ``run:`` and ``models:/`` (default: MLflow's, ``MLFLOW_TRACKING_URI``).

    Raises:
        UnknownPolicyError: no policy has that name; the message lists those that exist.
        agents.policy.PolicyFitError: a trained policy that does not fit the scenario.
        agents.baselines.RuleError: a rule set does not fit the scenario.
        agents.policy.PolicySpecError: anything else that cannot be given: no such run or
            model, a policy directory that does not verify, a name without a scenario.
    """
    if name.startswith(FIXED_PREFIX):
        if actions is None and scenario is None:
            raise PolicySpecError(f"{name}: no actions to choose among: give a scenario")
        choices = actions if actions is not None else scenario.action_names  # type: ignore[union-attr]
        return FixedAction(choices, name[len(FIXED_PREFIX) :])
    if is_trained(name):
        return load_trained(name, scenario, tracking_uri)
    if name in BOUNDS:
        raise UnknownPolicyError(
            f"{name!r} sees hidden shopper state: it is evaluated beside other policies, "
            "their plans among its candidates (concede evaluate), not alone"
        )
    if not name.startswith(RULES_PREFIX) and ("/" in name or Path(name).is_dir()):
        raise PolicySpecError(
            f"{name!r} is not a policy directory ("
            + ("no manifest.json in it" if Path(name).is_dir() else "no such directory")
            + "): give the directory agents.export.export_policy wrote (manifest.json and "
            "policy.onnx)"
        )
    if scenario is None:
        raise PolicySpecError(_needs_scenario([name]))
    if name == NEVER:
        return NeverOffer()
    if name == UPLIFT:
        u = UpliftSettings()
        return TrainedOnDemand(
            UPLIFT, lambda: cached(UPLIFT, scenario, u.to_dict(), lambda: train_uplift(scenario, u))
        )
    if name == BANDIT:
        b = BanditSettings()
        return TrainedOnDemand(
            BANDIT, lambda: cached(BANDIT, scenario, b.to_dict(), lambda: train_bandit(scenario, b))
        )
    if name in CURVE_EXPONENTS:
        return TimeCurvePolicy(scenario, name)
    if name.startswith(RULES_PREFIX):
        return RulePolicy(scenario, load_rules(name[len(RULES_PREFIX) :]))
    if name in available_rule_sets(rules_folder):
        return RulePolicy(scenario, load_rules(name, rules_folder))
    if name.startswith("always_"):
        try:
            return AlwaysOffer(scenario, name[len("always_") :])
        except ValueError:
            pass
    raise UnknownPolicyError(_unknown(f"policy {name!r}", scenario, rules_folder))


def _unknown(what: str, scenario: Scenario, rules_folder: Path | None) -> str:
    return (
        f"unknown {what} for scenario {scenario.name!r}; available: "
        f"{available_policies(scenario, rules_folder)}; always_<kind> works for the kinds "
        f"{sorted({c.kind.value for c in scenario.concessions})}"
    )


def _needs_scenario(names: Sequence[str]) -> str:
    return (
        f"the policies {list(names)} are built for a scenario, and none is given: give "
        "scenario=<name or file>"
    )


def _privileged(name: str) -> str:
    return (
        f"{name!r} sees hidden shopper state and future draws, which no shop observes and no "
        "log holds: it can only be evaluated in the simulator (concede evaluate)"
    )


def covered_by_oracle(policy: Policy) -> bool:
    """True for the baselines the oracle's own plans already cover shopper by shopper."""
    return isinstance(policy, NeverOffer | AlwaysOffer)


def build_policies(
    names: Sequence[str | Policy],
    scenario: Scenario | None,
    *,
    rules_folder: Path | None = None,
    oracle_workers: int = 1,
    actions: Sequence[str] | None = None,
    tracking_uri: str | None = None,
    privileged: bool = True,
) -> list[Policy]:
    """The policies named (``always_*`` expanded), in order; a policy object given instead
    of a name (a learned agent, say) is taken as it is. Two policies of the same name: the
    first is kept. ``actions`` and ``tracking_uri`` as for :func:`build_policy`;
    ``privileged=False`` (an evaluation on a log, a logger) refuses the oracle and the
    informed bound.

    The oracle, if listed, gets every other listed policy it does not cover
    (:func:`covered_by_oracle`) as an extra candidate plan. All names are checked before
    anything is built, so one error lists every unknown name at once.

    Raises: as :func:`build_policy`, and ``PolicySpecError`` for a privileged policy
    where ``privileged`` is False or names without a scenario.
    """
    given = {p.name: p for p in names if not isinstance(p, str)}
    strings = [p if isinstance(p, str) else p.name for p in names]
    if not strings:
        raise UnknownPolicyError(
            "no policy given; available: "
            + (str(available_policies(scenario, rules_folder)) if scenario else POLICY_STRINGS)
        )
    bounds = [n for n in strings if n in BOUNDS and n not in given]
    if bounds and not privileged:
        raise PolicySpecError(_privileged(bounds[0]))
    if scenario is None:
        named = [n for n in strings if n not in given and needs_scenario(n)]
        if named:
            raise PolicySpecError(_needs_scenario(named))
        expanded = list(dict.fromkeys(strings))
    else:
        expanded = expand_names(strings, scenario)
    unknown = []
    built: dict[str, Policy] = {}
    for name in expanded:
        if name in given:
            built[name] = given[name]
            continue
        if name in BOUNDS:
            continue
        try:
            built[name] = build_policy(
                name, scenario, rules_folder, actions=actions, tracking_uri=tracking_uri
            )
        except UnknownPolicyError:
            unknown.append(name)
    if unknown:
        assert scenario is not None  # without one, every name was refused above
        raise UnknownPolicyError(_unknown(f"policy name(s) {unknown}", scenario, rules_folder))
    out: dict[str, Policy] = {}
    for name in expanded:
        if name in BOUNDS and name not in built:
            assert scenario is not None
            extra = [p for p in built.values() if not covered_by_oracle(p)]
            policy: Policy = (
                Oracle(scenario, extra, workers=oracle_workers)
                if name == ORACLE
                else InformedBound(scenario, extra)
            )
        else:
            policy = built[name]
        out.setdefault(policy.name, policy)
    return list(out.values())
