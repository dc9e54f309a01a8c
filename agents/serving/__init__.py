"""Serving an exported policy: the runtime (:mod:`.runtime`, one file: numpy and
onnxruntime only, copied beside a policy), the MLflow model from code
(:mod:`.mlflow_model`), its packaging (:mod:`.packaging`), simulator events as runtime
input (:mod:`.simulator_events`) and starting a scoring server (:mod:`.server`).

Importing this package imports nothing: each module pulls in only what it needs.
"""
