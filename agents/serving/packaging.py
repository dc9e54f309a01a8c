"""An exported policy as an MLflow pyfunc "from code": signature, requirements, save, log.

The model's code is :mod:`agents.serving.mlflow_model` plus a copy of
:mod:`agents.serving.runtime` logged as ``concede_runtime.py`` (``code_paths``); its one
artifact is the policy directory (``policy.onnx`` + ``manifest.json``). Loading it
unpickles nothing, and a deployment needs mlflow, onnxruntime, numpy and pandas only.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import AnyType

from agents.serving import runtime as runtime_module
from agents.serving.runtime import OUTPUT_COLUMNS, PolicyRuntime

MODEL_CODE = Path(__file__).resolve().parent / "mlflow_model.py"
RUNTIME_CODE_NAME = "concede_runtime.py"
_OUTPUT_TYPES = {
    "action_index": DataType.long,
    "expiry_steps": DataType.long,
    "magnitude": DataType.double,
    "unit_cost": DataType.double,
}
_OPTIONAL_OUTPUTS = ("runner_up", "guardrail")


def signature(policy: PolicyRuntime) -> ModelSignature:
    """Named input columns (every feature and context field, typed ``Any`` so that the
    runtime sees what was sent: see :mod:`agents.serving.mlflow_model`) and the output record."""
    inputs = Schema([ColSpec(AnyType(), name) for name in policy.input_names])
    outputs = Schema(
        [
            ColSpec(
                _OUTPUT_TYPES.get(name, DataType.string),
                name,
                required=name not in _OPTIONAL_OUTPUTS,
            )
            for name in OUTPUT_COLUMNS
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def requirements() -> list[str]:
    """What a deployment installs: mlflow, onnxruntime, numpy, pandas (pinned as here)."""
    return [
        f"{name}=={importlib.metadata.version(name)}"
        for name in ("mlflow", "onnxruntime", "numpy", "pandas")
    ]


def _model_kwargs(policy_dir: Path, staging: Path) -> dict[str, Any]:
    policy = PolicyRuntime.load(policy_dir)
    code = staging / RUNTIME_CODE_NAME
    shutil.copyfile(runtime_module.__file__, code)
    manifest = policy.manifest
    return {
        "python_model": str(MODEL_CODE),
        "artifacts": {"policy": str(policy_dir)},
        "code_paths": [str(code)],
        "signature": signature(policy),
        "input_example": pd.DataFrame([policy.example_event()]),
        "pip_requirements": requirements(),
        "metadata": {
            "concede": {
                "scenario": manifest["scenario"]["name"],
                "scenario_digest": manifest["scenario"]["digest"],
                "policy_sha256": manifest["policy"]["sha256"],
                "schema_version": manifest["schema_version"],
                "training_run_id": manifest["training"]["run_id"],
            }
        },
    }


def save_policy_model(policy_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Save the pyfunc of an exported policy directory to a local ``path`` (no tracking)."""
    with tempfile.TemporaryDirectory() as staging:
        mlflow.pyfunc.save_model(str(path), **_model_kwargs(Path(policy_dir), Path(staging)))
    return Path(path)


def log_policy_model(policy_dir: str | os.PathLike[str], registered_name: str | None = None) -> Any:
    """Log the pyfunc of an exported policy directory in the active run (and register it
    under ``registered_name``); returns MLflow's ``ModelInfo``."""
    with tempfile.TemporaryDirectory() as staging:
        return mlflow.pyfunc.log_model(
            name="policy",
            registered_model_name=registered_name,
            **_model_kwargs(Path(policy_dir), Path(staging)),
        )
