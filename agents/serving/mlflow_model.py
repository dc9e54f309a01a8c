"""The MLflow pyfunc of an exported concede policy, logged as code ("models from code").

MLflow runs this file when it loads the model (``mlflow.pyfunc.load_model``,
``mlflow models serve``): it defines :class:`ConcedePolicyModel` and hands an instance to
``mlflow.models.set_model``. Nothing is unpickled: the network is ``policy.onnx`` and the
rules are ``manifest.json`` (the model's ``policy`` artifact, an exported policy
directory), and the code is this file plus ``concede_runtime.py``, a copy of
``agents/serving/runtime.py`` logged beside it with ``code_paths`` (see
``agents.serving.packaging.log_policy_model``). So a deployment needs mlflow, onnxruntime,
numpy and pandas, not this repository: this file imports nothing from it.

Requests: one row per event, with the columns of the model's signature (every feature
and context field of the manifest). Responses: one record per row with the columns of
``concede_runtime.OUTPUT_COLUMNS`` (action, concession details, model choice, runner-up,
guardrail, reason). An invalid row (null, a boolean, a string, NaN, ±inf, a number out
of its bounds, a binary field not 0 or 1, a count not whole) fails the whole request
with ``INVALID_PARAMETER_VALUE``, which the scoring server answers with HTTP 400 and the
runtime's message naming the field and row.

The signature types every column as ``Any`` on purpose: with ``double`` columns MLflow's
schema enforcement would turn ``true`` into 1.0, null into NaN and 2.5 into 2 (for
``long``) before the model sees them; with ``Any`` the runtime sees what was sent and
refuses it by name.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel, PythonModelContext

RUNTIME_MODULE = "concede_runtime"
POLICY_ARTIFACT = "policy"


class ConcedePolicyModel(PythonModel):
    """Decides each row of a request with the exported policy and its guardrails."""

    def load_context(self, context: PythonModelContext) -> None:
        try:
            runtime = importlib.import_module(RUNTIME_MODULE)
        except ModuleNotFoundError:
            raise MlflowException(
                f"{RUNTIME_MODULE}.py is not among the model's code files: log the model "
                "with experiments.register (it adds agents/serving/runtime.py as "
                f"{RUNTIME_MODULE}.py with code_paths)"
            ) from None
        self._runtime = runtime.PolicyRuntime.load(context.artifacts[POLICY_ARTIFACT])
        self._input_error: Any = runtime.PolicyInputError
        self._input_names = frozenset(self._runtime.input_names)

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """One decision record per row; invalid input -> ``INVALID_PARAMETER_VALUE`` (400)."""
        try:
            return self._decide(model_input)
        except self._input_error as err:
            raise MlflowException(
                f"invalid request: {err}", error_code=INVALID_PARAMETER_VALUE
            ) from None

    def _decide(self, data: Any) -> list[dict[str, Any]]:
        if isinstance(data, pd.DataFrame):
            names = data.columns.tolist()
            values = data.to_numpy()
            # numeric only if every column is: a bool, null or text column makes it object
            if values.dtype.kind in "fiu" and set(names) == self._input_names:
                if len(values) == 1:  # the one-event path: leaner than a batch of one
                    event = dict(zip(names, values[0].tolist(), strict=True))
                    try:
                        return [self._runtime.decide(event).record()]
                    except self._input_error as err:  # name the row, as for a batch
                        raise self._input_error(err.field, err.problem, 0) from None
                columns = {name: values[:, j] for j, name in enumerate(names)}
                return self._runtime.decide_batch(columns).records()
            return self._runtime.decide_batch(
                {str(name): data[name].to_numpy() for name in names}
            ).records()
        if isinstance(data, Mapping):
            return self._runtime.decide_batch({str(k): v for k, v in data.items()}).records()
        raise self._input_error(
            None, f"send a table of events (one row each), got {type(data).__name__}"
        )


mlflow.models.set_model(ConcedePolicyModel())
