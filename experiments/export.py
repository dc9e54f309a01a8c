"""Export a training run's policy as a policy folder: ``concede export run_id=<id> out=<dir>``.

``python -m experiments.export`` (options in
:class:`~experiments.config.app_schemas.ExportConfig`) reads the finished run's model,
config and evaluation from MLflow and writes ``policy.onnx`` and ``manifest.json``
(:func:`experiments.tracking.registry.export_run`): the folder that the in-process
runtime, ``concede serve``, ``concede evaluate`` and ``concede ope`` load. Nothing is
registered (``concede register`` does that). The last line printed is JSON: the folder
and the policy's sha256.
"""

from __future__ import annotations

import os

from experiments.config.cpu_kernels import CPU_KERNELS

# first, before torch or numpy loads: the same kernels, so the same figures, on any x86-64
# CPU (experiments/config/cpu_kernels.py says why and what it costs)
os.environ.update(CPU_KERNELS)

import json

import hydra
from omegaconf import DictConfig

from experiments.config import CONFIG_PATH
from experiments.config.app_schemas import ExportConfig, store_schemas
from experiments.config.trusted import TRUSTED_TARGETS
from experiments.config.typed_app import fail, options_of
from experiments.tracking.registry import RegisterError, export_run

store_schemas()


@hydra.main(config_path=CONFIG_PATH, config_name="export", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> None:
    args = options_of(cfg, ExportConfig)
    try:
        folder = export_run(args.run_id, args.out, tracking_uri=args.tracking_uri)
    except RegisterError as err:
        fail(str(err))
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    print(f"exported run {args.run_id}'s policy to {folder}")
    print(json.dumps({"policy": str(folder), "sha256": manifest["policy"]["sha256"]}))


if __name__ == "__main__":
    main()
