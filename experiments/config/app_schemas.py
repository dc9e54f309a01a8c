"""Typed schemas of the apps whose options are plain values (no config groups of their own).

``concede calibrate``, ``report``, ``register`` and ``export`` take Hydra overrides like
every other app (``key=value``). Each config file of ``conf/`` (``calibrate.yaml``...)
starts from its schema here (Hydra's structured configs: ``defaults: [<app>_schema,
_self_]``), so a value of the wrong type is refused by Hydra before the app starts
(``shoppers=many``: "Value 'many' of type 'str' could not be converted to Integer") and an
unknown key too (``shopers=1``: "Key 'shopers' is not in struct"). Checks across values
(a range, an option that needs another) are each schema's ``__post_init__``, raising
:class:`ValueError` with the key's name; the apps turn it into ``error: ...`` and exit
status 2.

:func:`store_schemas` puts them in Hydra's ``ConfigStore``; each app calls it before its
``@hydra.main`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from experiments.calibration import FORECAST_SCENARIOS


def _at_least(name: str, value: int | float, low: int | float) -> None:
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")


def _names(value: Any, key: str) -> list[str]:
    """A list of names given as one string (``a,b`` or ``a``) or as a list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    raise ValueError(f"{key} must be a name or a list of names, got {value!r}")


@dataclass
class CalibrateConfig:
    """``concede calibrate``: fit a scenario to a shop's data (``conf/calibrate.yaml``).

    Args:
        data: session tables and/or decision logs (CSV or Parquet). Empty: the fit of
            ``start``'s calibration block to the public Online Shoppers data, written into
            its file.
        start: the scenario the fit starts from: a shipped name or a YAML path.
        fit: parameters and presets to fit: one name (``appeal``, ``wide``...), a list
            (``[appeal,sensitivities]``) or a comma-separated string.
        out: the fitted scenario's YAML path (needed with ``data``).
        report: the fit report's HTML path (default: beside ``out``).
        check: without ``data``, only report the current public-data fit.
        shoppers: simulated shoppers per trial.
        journeys: simulated logged journeys per trial.
        seed: the fit's seed.
        holdout: share of the shop's journeys held out of the fit.
        replicates: bootstrap replicates of the fit's uncertainty.
        workers: processes simulating the fit's candidates (null: the cores this process
            may use, at most 8); the figures do not depend on it.
        logger: the log's logging policy, if its metadata lacks it.
        exploration: the log's exploration (``epsilon:0.3``), if its metadata lacks it.
        forecast: policies whose profit to forecast on the fitted scenario.
        forecast_scenarios: replicate scenarios per forecast.
        forecast_shoppers: simulated shoppers per forecast run.
    """

    data: list[str] = field(default_factory=list)
    start: str = "default"
    fit: Any = "appeal"
    out: str | None = None
    report: str | None = None
    check: bool = False
    shoppers: int = 40_000
    journeys: int = 20_000
    seed: int = 2024
    holdout: float = 0.2
    replicates: int = 300
    workers: int | None = None
    logger: str | None = None
    exploration: str | None = None
    forecast: list[str] = field(default_factory=list)
    forecast_scenarios: int = FORECAST_SCENARIOS
    forecast_shoppers: int = 20_000

    def __post_init__(self) -> None:
        self.fit = ",".join(_names(self.fit, "fit"))
        if self.data and not self.out:
            raise ValueError("data needs out=<the fitted scenario's YAML path>")
        if self.forecast and not self.data:
            raise ValueError("forecast needs data (it forecasts on the scenario fitted to it)")
        for name in ("shoppers", "journeys", "replicates"):
            _at_least(name, getattr(self, name), 1)
        if self.workers is not None:
            _at_least("workers", self.workers, 1)
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout}")


@dataclass
class ReportConfig:
    """``concede report``: the merchant report of runs or evaluations (``conf/report.yaml``).

    Args:
        experiment_name: an MLflow experiment's runs (default: ``concede``).
        sweep: a sweep's runs: its parent run id or its folder.
        run_ids: given training runs.
        evaluations: ``evaluation.json`` files of ``concede evaluate`` or of a run.
        ope: off-policy evaluations on your logs (the JSON of ``concede ope``): an "On
            your logs" section beside the simulated figures.
        tracking_uri: the MLflow store (default: ``MLFLOW_TRACKING_URI``, else the
            embedded ``outputs/mlflow.db``).
        current_rule: the policy you use today (default: ``merchant_rules`` if evaluated,
            else the best baseline).
        policy: the policy the verdict is about (default: the trained agent).
        out_dir: folder of the report.
        name: file name without extension (default: timestamped).
    """

    experiment_name: str | None = None
    sweep: str | None = None
    run_ids: list[str] = field(default_factory=list)
    evaluations: list[str] = field(default_factory=list)
    ope: list[str] = field(default_factory=list)
    tracking_uri: str | None = None
    current_rule: str | None = None
    policy: str | None = None
    out_dir: str = "outputs/reports"
    name: str | None = None

    def __post_init__(self) -> None:
        chosen = [k for k in ("experiment_name", "sweep", "run_ids") if getattr(self, k)]
        if len(chosen) > 1:
            raise ValueError(f"give one of experiment_name, sweep and run_ids, not {chosen}")


@dataclass
class RegisterConfig:
    """``concede register``: a run's policy registered in MLflow (``conf/register.yaml``).

    Args:
        run_id: the finished training run.
        alias: ``challenger`` or ``champion`` (promotes it).
        tracking_uri: the MLflow store (default: ``MLFLOW_TRACKING_URI``, else
            ``outputs/mlflow.db``).
        name: registered model name (default ``concede-<scenario>``).
        force: promote a run whose verdict is "worse" than the best baseline.
    """

    run_id: str = "???"
    alias: str = "challenger"
    tracking_uri: str | None = None
    name: str | None = None
    force: bool = False


@dataclass
class ExportConfig:
    """``concede export``: a run's policy written as a policy folder (``conf/export.yaml``).

    Args:
        run_id: the finished training run.
        out: the policy folder to write (``policy.onnx`` and ``manifest.json``).
        tracking_uri: the MLflow store (default: ``MLFLOW_TRACKING_URI``, else
            ``outputs/mlflow.db``).
    """

    run_id: str = "???"
    out: str = "outputs/policy"
    tracking_uri: str | None = None


SCHEMAS: dict[str, type] = {
    "calibrate_schema": CalibrateConfig,
    "report_schema": ReportConfig,
    "register_schema": RegisterConfig,
    "export_schema": ExportConfig,
}


def store_schemas() -> None:
    """Put the schemas in Hydra's ``ConfigStore`` (idempotent)."""
    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(name=name, node=schema, replace=True)
