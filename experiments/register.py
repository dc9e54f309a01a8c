"""Register a training run's policy in the MLflow model registry, served by the runtime.

``concede register run_id=<id> [alias=champion|challenger] [tracking_uri=URI] [name=NAME]
[force=true]`` (``python -m experiments.register``; options in
:class:`~experiments.config.app_schemas.RegisterConfig`): exports the run's policy, logs it
as an MLflow pyfunc from code in a child run, registers it as ``concede-<scenario>`` (or
``name``) and points the alias at it (see :mod:`experiments.tracking.registry`).
Promoting a policy whose verdict is "worse" than the best baseline needs ``force=true``.
The last line printed is JSON: name, version, alias, model URI, run id, policy sha256.

Serve the champion with ``concede serve --policy models:/concede-default@champion`` or
``mlflow models serve -m models:/concede-default@champion --env-manager local`` (tracking
URI in ``MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

import os

from experiments.config.cpu_kernels import CPU_KERNELS

# first, before torch or numpy loads: the same kernels, so the same figures, on any x86-64
# CPU (experiments/config/cpu_kernels.py says why and what it costs)
os.environ.update(CPU_KERNELS)

import json
from dataclasses import asdict

import hydra
from omegaconf import DictConfig

from experiments.config import CONFIG_PATH
from experiments.config.app_schemas import RegisterConfig, store_schemas
from experiments.config.trusted import TRUSTED_TARGETS
from experiments.config.typed_app import fail, options_of
from experiments.tracking.registry import RegisterError, register

store_schemas()


@hydra.main(config_path=CONFIG_PATH, config_name="register", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> None:
    args = options_of(cfg, RegisterConfig)
    try:
        done = register(
            args.run_id,
            tracking_uri=args.tracking_uri,
            alias=args.alias,
            name=args.name,
            force=args.force,
        )
    except RegisterError as err:
        fail(str(err))
    action = "exported and registered" if done.exported else "already registered"
    print(f"{done.name} version {done.version}: {action}; alias {done.alias} -> {done.model_uri}")
    print(json.dumps(asdict(done)))


if __name__ == "__main__":
    main()
