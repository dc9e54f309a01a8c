"""Tracking runs in MLflow: names (:mod:`.names`, imports nothing heavy), the store
(:mod:`.store`), the Hydra callback that prepares it (:mod:`.callback`), SB3's metrics
writer (:mod:`.sb3_writer`) and the model registry (:mod:`.registry`)."""
