"""The decision-log format: round trips, the validator's errors, the simulator's logger.

Logs are simulated on the shipped ``default`` (and ``black_friday``) scenario, small and
seeded; the validator cases each break one thing of a valid log and check that the error
names the column and the rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import envs
from agents.exploration import Exploration, draw_actions, masked_softmax
from agents.logs import (
    LOG_SCHEMA_VERSION,
    LogReadError,
    LogSchemaError,
    LogSpec,
    LogValidationError,
    from_dataframe,
    from_table,
    read_log,
    write_log,
)
from agents.logs.schema import METADATA_KEY
from agents.logs.simulate import simulate_logs
from agents.registry import build_policy
from agents.rollout import run_policy
from envs.scenario import Scenario

SEED = 7


@pytest.fixture(scope="module")
def default() -> Scenario:
    return envs.load_scenario("default")


@pytest.fixture(scope="module")
def table(default: Scenario) -> pa.Table:
    """300 journeys of merchant_rules with 20% exploration."""
    logger = build_policy("merchant_rules", default)
    return simulate_logs(default, logger, 300, SEED, Exploration("epsilon", 0.2))


def journey_profits(t: pa.Table, seed: int, n: int) -> np.ndarray:
    frame = t.select(["journey", "reward"]).to_pandas()
    sums = frame.groupby("journey", sort=False)["reward"].sum()
    return sums.reindex([f"{seed}-{i}" for i in range(n)]).to_numpy()


# ---------------------------------------------------------------- round trips


def test_parquet_round_trip_keeps_table_and_spec(table: pa.Table, tmp_path: Path) -> None:
    path = write_log(table, tmp_path / "log.parquet")
    log = read_log(path, require_propensity=True)
    assert log.table.equals(table)
    assert log.spec == LogSpec.from_metadata(table.schema.metadata)
    meta = json.loads(log.table.schema.metadata[METADATA_KEY])
    assert meta["schema_version"] == LOG_SCHEMA_VERSION
    assert meta["scenario"] == "default" and meta["logger"] == "merchant_rules"
    assert meta["exploration"] == {"kind": "epsilon", "value": 0.2}
    assert log.info.n_journeys == 300 and not log.info.single_decision


def test_csv_round_trip_with_the_spec_or_the_scenario(
    table: pa.Table, default: Scenario, tmp_path: Path
) -> None:
    path = write_log(table, tmp_path / "log.csv")
    assert path.read_text().splitlines()[0].startswith("journey,step,cart_value")
    spec = LogSpec.from_metadata(table.schema.metadata)
    assert spec is not None
    by_spec = read_log(path, spec=spec)
    by_scenario = read_log(path, scenario=default)
    plain = table.replace_schema_metadata(None)
    for log in (by_spec, by_scenario):
        assert log.table.replace_schema_metadata(None).equals(plain)
    assert by_spec.spec == spec and by_scenario.spec.features == spec.features
    # gated features of shoppers without consent stay null through CSV
    assert (
        by_scenario.table.column("exit_intent").null_count
        == table.column("exit_intent").null_count
        > 0
    )


def test_a_folder_of_rotated_files_reads_as_one_log(table: pa.Table, tmp_path: Path) -> None:
    folder = write_log(table, tmp_path / "logs", rows_per_file=1000)
    assert len(list(folder.glob("part-*.parquet"))) == -(-table.num_rows // 1000)
    assert read_log(folder).table.equals(table)


def test_files_of_another_log_in_the_folder_are_refused(
    table: pa.Table, default: Scenario, tmp_path: Path
) -> None:
    write_log(table, tmp_path / "a.parquet")
    other = simulate_logs(
        default, build_policy("never", default), 20, 1, Exploration("epsilon", 0.1)
    )
    write_log(other, tmp_path / "b.parquet")
    with pytest.raises(LogReadError, match="another log"):
        read_log(tmp_path)


def test_reading_nothing_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(LogReadError, match="no such file"):
        read_log(tmp_path / "nope.parquet")
    with pytest.raises(LogReadError, match="no log file"):
        read_log(tmp_path)


def test_another_schema_version_is_refused(table: pa.Table, tmp_path: Path) -> None:
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    meta["schema_version"] = "99"
    old = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
    with pytest.raises(LogSchemaError, match="schema version '99'"):
        read_log(write_log(old, tmp_path / "old.parquet"))


# ---------------------------------------------------------------- the validator


def _set(t: pa.Table, column: str, rows: list[int], value: object) -> pa.Table:
    values = t.column(column).to_pylist()
    for r in rows:
        values[r] = value
    i = t.column_names.index(column)
    return t.set_column(i, t.field(column), pa.array(values, t.field(column).type))


def _first_consenting_row(t: pa.Table) -> int:
    consent = t.column("consent").to_numpy()
    return int(np.flatnonzero(consent == 1.0)[0])


def _rows_where(t: pa.Table, condition: pa.Array) -> list[int]:
    return np.flatnonzero(np.asarray(condition.to_numpy(zero_copy_only=False))).tolist()


def _ineligible_action(t: pa.Table) -> tuple[pa.Table, int]:
    row = _rows_where(t, pc.invert(t.column("eligible_free_gift")))[0]
    return _set(_set(t, "action", [row], "free_gift"), "p_free_gift", [row], 0.0), row


def _not_last_end(t: pa.Table) -> tuple[pa.Table, int]:
    return _set(t, "journey_end", [0], "purchase"), 0


def _steps_back(t: pa.Table) -> tuple[pa.Table, int]:
    return _set(t, "step", [1], 0), 1


def _gated_stored(t: pa.Table) -> tuple[pa.Table, int]:
    row = _rows_where(t, pc.equal(t.column("consent"), 0.0))[0]
    return _set(t, "dwell_time", [row], 1.0), row


def _bad_sum(t: pa.Table) -> tuple[pa.Table, int]:
    return _set(t, "p_wait", [4], 0.5), 4


CASES: list[tuple[str, Callable[[pa.Table], tuple[pa.Table, int]], str, str]] = [
    (
        "missing propensity",
        lambda t: (_set(t, "propensity", [3], None), 3),
        "propensity",
        "missing",
    ),
    ("propensity 0", lambda t: (_set(t, "propensity", [5], 0.0), 5), "propensity", "in \\(0, 1\\]"),
    (
        "propensity above 1",
        lambda t: (_set(t, "propensity", [6], 1.5), 6),
        "propensity",
        "in \\(0, 1\\]",
    ),
    ("ineligible action", _ineligible_action, "action", "not eligible"),
    ("unknown action", lambda t: (_set(t, "action", [2], "bribe"), 2), "action", "unknown action"),
    ("probabilities not summing to 1", _bad_sum, "p_*", "sum to 1"),
    ("steps going back", _steps_back, "step", "strictly increase"),
    ("no journey key", lambda t: (_set(t, "journey", [4], None), 4), "journey", "every row"),
    ("no step", lambda t: (_set(t, "step", [7], None), 7), "step", "every row"),
    (
        "no eligibility",
        lambda t: (_set(t, "eligible_wait", [2], None), 2),
        "eligible_wait",
        "every row",
    ),
    ("end on a middle row", _not_last_end, "journey_end", "not its last"),
    ("gated feature stored", _gated_stored, "dwell_time", "without consent"),
    (
        "reward not the terms' sum",
        lambda t: (_set(t, "reward", [8], 12345.0), 8),
        "reward",
        "signed sum",
    ),
]


@pytest.mark.parametrize(("label", "breaks", "column", "problem"), CASES, ids=[c[0] for c in CASES])
def test_each_error_names_its_column_and_row(
    table: pa.Table,
    label: str,
    breaks: Callable[[pa.Table], tuple[pa.Table, int]],
    column: str,
    problem: str,
) -> None:
    broken, row = breaks(table)
    with pytest.raises(LogValidationError, match=problem) as caught:
        from_table(broken, require_propensity=True)
    assert caught.value.column == column
    assert row in caught.value.rows
    assert f"column {column!r}" in str(caught.value) and str(row) in str(caught.value)


def test_unknown_and_missing_columns_are_named(table: pa.Table) -> None:
    typo = table.rename_columns(
        ["dwel_time" if c == "dwell_time" else c for c in table.column_names]
    )
    spec = LogSpec.from_metadata(table.schema.metadata)
    bare = typo.replace_schema_metadata(None)
    with pytest.raises(LogValidationError, match="unknown column") as caught:
        from_table(bare, spec)
    assert caught.value.column == "dwel_time"
    with pytest.raises(LogValidationError, match="required column missing") as caught:
        from_table(table.drop_columns(["eligible_wait"]).replace_schema_metadata(None), spec)
    assert caught.value.column == "eligible_wait"
    unreadable = _set(
        table.cast(table.schema.set(1, pa.field("step", pa.string()))), "step", [9], "x"
    )
    with pytest.raises(LogValidationError, match="cannot be read as int64") as caught:
        from_table(unreadable.replace_schema_metadata(None), spec)
    assert caught.value.column == "step" and caught.value.rows == [9]


def test_a_log_without_propensities_passes_unless_they_are_required(table: pa.Table) -> None:
    bare = table.drop_columns(
        ["propensity"] + [c for c in table.column_names if c.startswith("p_")]
    )
    spec = LogSpec.from_metadata(table.schema.metadata)
    assert spec is not None
    spec = spec.with_source(probabilities=False)
    log = from_table(bare.replace_schema_metadata(None), spec)
    assert not log.info.propensity_logged and log.spec.propensities == "none"
    with pytest.raises(LogValidationError, match="propensity missing") as caught:
        from_table(bare.replace_schema_metadata(None), spec, require_propensity=True)
    assert caught.value.column == "propensity" and caught.value.n_bad == bare.num_rows


# ---------------------------------------------------------------- the single-decision case


def ab_test_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A small randomised coupon trial as a shop would keep it: one row per customer, the
    arm assigned with known probabilities (30% coupon), the spend as outcome."""
    rng = np.random.default_rng(seed)
    coupon = rng.random(n) < 0.3
    loyal = (rng.random(n) < 0.5).astype(float)
    spend = np.where(rng.random(n) < 0.2 + 0.1 * coupon + 0.1 * loyal, 50.0 - 5.0 * coupon, 0.0)
    frame = pd.DataFrame(
        {
            "journey": [f"c{i}" for i in range(n)],
            "step": 0,
            "loyal": loyal,
            "eligible_control": True,
            "eligible_coupon": True,
            "action": np.where(coupon, "coupon", "control"),
            "propensity": np.where(coupon, 0.3, 0.7),
            "reward": spend,
            "journey_end": np.where(spend > 0, "purchase", "abandoned"),
        }
    )
    return frame, spend


def test_an_ab_test_from_pandas_is_a_single_decision_log(tmp_path: Path) -> None:
    frame, _ = ab_test_frame(200, 0)
    log = from_dataframe(frame, logger="coupon A/B test")
    assert log.info.single_decision and log.info.n_journeys == 200
    assert log.spec.actions == ("control", "coupon") and log.spec.features == ("loyal",)
    assert log.spec.terms == () and log.spec.logger == "coupon A/B test"
    back = read_log(write_log(log.table, tmp_path / "ab.parquet"))
    assert back.table.equals(log.table) and back.info.single_decision


def test_timestamps_are_utc_with_or_without_a_zone(tmp_path: Path) -> None:
    frame, _ = ab_test_frame(3, 0)
    frame["timestamp"] = ["2026-11-27T09:00:00", "2026-11-27T10:00:00+01:00", None]
    log = from_dataframe(frame)
    assert log.spec.timestamp
    got = log.table.column("timestamp").to_pylist()
    assert got[0] == got[1] and got[0].isoformat() == "2026-11-27T09:00:00+00:00"
    assert got[2] is None
    back = read_log(write_log(log.table, tmp_path / "t.csv"), spec=log.spec)
    assert back.table.column("timestamp").equals(log.table.column("timestamp"))
    frame["timestamp"] = ["yesterday", None, None]
    with pytest.raises(LogValidationError, match="cannot be read") as caught:
        from_dataframe(frame)
    assert caught.value.column == "timestamp" and caught.value.rows == [0]


# ---------------------------------------------------------------- the simulator's logger


@pytest.mark.parametrize(
    ("scenario_name", "policy_name"),
    [
        ("default", "merchant_rules"),
        ("default", "never"),
        ("black_friday", "always_recovery_email"),
    ],
)
def test_without_exploration_journeys_sum_to_the_paired_evaluations_profit(
    scenario_name: str, policy_name: str
) -> None:
    scenario = envs.load_scenario(scenario_name)
    policy = build_policy(policy_name, scenario)
    n, cohort = 900, 400  # three cohorts: memory and budget carried between them
    t = simulate_logs(scenario, policy, n, SEED, Exploration("epsilon", 0.0), cohort_size=cohort)
    outcomes = run_policy(scenario, policy, n, SEED, cohort_size=cohort)
    np.testing.assert_allclose(journey_profits(t, SEED, n), outcomes.profit, atol=1e-9)
    assert pc.all(pc.equal(t.column("propensity"), 1.0)).as_py()
    bought = pc.equal(t.column("journey_end"), "purchase").to_numpy(zero_copy_only=False)
    assert int(np.nansum(bought.astype(float))) == int(outcomes.bought.sum())
    assert from_table(t, require_propensity=True).info.n_journeys == n


def test_logged_propensities_are_the_frequencies_of_the_actions(default: Scenario) -> None:
    logger = build_policy("merchant_rules", default)
    t = simulate_logs(default, logger, 2000, 1, Exploration("epsilon", 0.5))
    log = from_table(t, require_propensity=True)  # p_ sum to 1, propensity = p_<action>
    spec = log.spec
    probs = np.column_stack([t.column(c).to_numpy() for c in spec.probability_columns])
    taken = pc.index_in(t.column("action"), value_set=pa.array(spec.actions)).to_numpy()
    expected = probs.sum(axis=0)
    observed = np.bincount(taken, minlength=len(spec.actions))
    # per action, observed counts within 4 standard deviations of the logged probabilities
    sd = np.sqrt((probs * (1 - probs)).sum(axis=0))
    assert np.all(np.abs(observed - expected) <= 4 * sd + 1e-9)
    assert observed[1:].sum() > 1000  # the exploration really explored


def test_draw_actions_follows_the_probabilities_and_never_draws_a_zero() -> None:
    p = np.tile([0.0, 0.2, 0.0, 0.8], (100_000, 1))
    drawn = draw_actions(p, np.random.default_rng(0))
    counts = np.bincount(drawn, minlength=4) / len(drawn)
    assert counts[0] == counts[2] == 0.0
    assert abs(counts[1] - 0.2) < 0.005


def test_logs_are_reproducible_from_the_seed(default: Scenario) -> None:
    logger = build_policy("merchant_rules", default)
    a = simulate_logs(default, logger, 200, 11, Exploration("epsilon", 0.3))
    b = simulate_logs(default, logger, 200, 11, Exploration("epsilon", 0.3))
    c = simulate_logs(default, logger, 200, 12, Exploration("epsilon", 0.3))
    assert a.equals(b)
    assert not a.equals(c)
    assert a.column("journey")[0].as_py() == "11-0"


def test_gated_features_are_not_stored_without_consent(table: pa.Table, default: Scenario) -> None:
    no_consent = pc.equal(table.column("consent"), 0.0)
    assert pc.any(no_consent).as_py()
    gated = LogSpec.from_scenario(default).gated
    assert "exit_intent" in gated and "cart_value" not in gated
    for name in gated:
        assert pc.all(pc.is_null(table.filter(no_consent).column(name))).as_py()
    assert table.filter(no_consent).column("cart_value").null_count == 0


class Scored:
    """A policy with scores: prefers later actions."""

    name = "scored"

    def scores(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.tile(np.arange(mask.shape[1], dtype=float), (len(obs), 1))

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.where(mask, self.scores(obs, mask), -np.inf).argmax(axis=1)


def test_softmax_exploration_needs_scores_and_logs_their_probabilities(default: Scenario) -> None:
    with pytest.raises(ValueError, match="use epsilon exploration"):
        simulate_logs(default, build_policy("never", default), 10, 0, Exploration("softmax", 1.0))
    t = simulate_logs(default, Scored(), 100, 0, Exploration("softmax", 2.0))
    log = from_table(t, require_propensity=True)
    mask = np.column_stack([t.column(c).to_numpy() for c in log.spec.eligible_columns])
    probs = np.column_stack([t.column(c).to_numpy() for c in log.spec.probability_columns])
    np.testing.assert_allclose(probs, masked_softmax(Scored().scores(mask, mask), mask, 2.0))


def test_bad_exploration_and_the_oracle_as_logger_are_refused(default: Scenario) -> None:
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        Exploration("epsilon", 1.5)
    with pytest.raises(ValueError, match="> 0"):
        Exploration("softmax", 0.0)
    from agents.registry import build_policies

    (oracle,) = build_policies(["oracle"], default)
    with pytest.raises(ValueError, match="hidden shopper state"):
        simulate_logs(default, oracle, 10, 0)
