"""Policy names to policies: what ``policies=[...]`` in an evaluation may list.

Names, for a given scenario:

- ``never``;
- ``always_<concession>``: one per catalogue entry (:class:`agents.baselines.AlwaysOffer`);
  ``always_<kind>`` picks the first entry of that kind (``always_percent_discount``), so
  that one list works on every scenario; ``always_*`` expands to the whole set;
- ``boulware``, ``linear``, ``conceder``: the time-based concession curves;
- a rule set shipped in ``conf/rules/`` by its name (``merchant_rules``), or any rule file
  as ``rules:<path.yaml>``;
- ``oracle``: the hindsight oracle (:mod:`agents.oracle`); built by :func:`build_policies`
  with the other listed policies that its own plans do not cover as extra candidates;
- ``informed``: the informed bound (:mod:`agents.informed`): knows the shopper, not the
  dice; the same candidates as the oracle;
- ``uplift``: uplift targeting learned from a randomised log
  (:mod:`agents.opponents.uplift`); ``bandit``: a contextual bandit learned online in the
  simulator (:mod:`agents.opponents.bandit`); both trained once per scenario and cached
  (:mod:`agents.opponents.cache`).

An unknown name raises :class:`UnknownPolicyError`, which lists the names that exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agents.baselines import (
    CURVE_EXPONENTS,
    AlwaysOffer,
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
from agents.policy import Policy
from envs.scenario import Scenario

ORACLE = "oracle"
INFORMED = "informed"
UPLIFT = "uplift"
BANDIT = "bandit"
BOUNDS = (ORACLE, INFORMED)  # references that see hidden state: never a baseline
NEVER = "never"
ALWAYS_ALL = "always_*"
RULES_PREFIX = "rules:"


class UnknownPolicyError(ValueError):
    """A policy name that no builder knows; the message lists the known names."""


def available_policies(scenario: Scenario, rules_folder: Path | None = None) -> list[str]:
    """Every name :func:`build_policy` accepts for ``scenario`` (kind aliases aside)."""
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
    ]


def expand_names(names: Sequence[str], scenario: Scenario) -> list[str]:
    """``names`` with ``always_*`` replaced by one name per catalogue entry, duplicates
    dropped (first occurrence kept)."""
    out: list[str] = []
    for name in names:
        items = [f"always_{c.name}" for c in scenario.concessions] if name == ALWAYS_ALL else [name]
        out.extend(i for i in items if i not in out)
    return out


def build_policy(name: str, scenario: Scenario, rules_folder: Path | None = None) -> Policy:
    """The baseline called ``name`` (not the oracle: see :func:`build_policies`).

    Raises:
        UnknownPolicyError: no policy has that name; the message lists those that exist.
        agents.baselines.RuleError: a rule set does not fit the scenario.
    """
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
    raise UnknownPolicyError(
        f"unknown policy {name!r} for scenario {scenario.name!r}; available: "
        f"{available_policies(scenario, rules_folder)}; always_<kind> works for the kinds "
        f"{sorted({c.kind.value for c in scenario.concessions})}"
    )


def covered_by_oracle(policy: Policy) -> bool:
    """True for the baselines the oracle's own plans already cover shopper by shopper."""
    return isinstance(policy, NeverOffer | AlwaysOffer)


def build_policies(
    names: Sequence[str | Policy],
    scenario: Scenario,
    *,
    rules_folder: Path | None = None,
    oracle_workers: int = 1,
) -> list[Policy]:
    """The policies named (``always_*`` expanded), in order; a policy object given instead
    of a name (a learned agent, say) is taken as it is. Two policies of the same name: the
    first is kept.

    The oracle, if listed, gets every other listed policy it does not cover
    (:func:`covered_by_oracle`) as an extra candidate plan. All names are checked before
    anything is built, so one error lists every unknown name at once.
    """
    given = {p.name: p for p in names if not isinstance(p, str)}
    expanded = expand_names([p if isinstance(p, str) else p.name for p in names], scenario)
    if not expanded:
        raise UnknownPolicyError(
            f"no policy given; available: {available_policies(scenario, rules_folder)}"
        )
    unknown = []
    built: dict[str, Policy] = {}
    for name in expanded:
        if name in given:
            built[name] = given[name]
            continue
        if name in BOUNDS:
            continue
        try:
            built[name] = build_policy(name, scenario, rules_folder)
        except UnknownPolicyError:
            unknown.append(name)
    if unknown:
        raise UnknownPolicyError(
            f"unknown policy name(s) {unknown} for scenario {scenario.name!r}; available: "
            f"{available_policies(scenario, rules_folder)}; always_<kind> works for the kinds "
            f"{sorted({c.kind.value for c in scenario.concessions})}"
        )
    out: dict[str, Policy] = {}
    for name in expanded:
        if name in BOUNDS and name not in built:
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
