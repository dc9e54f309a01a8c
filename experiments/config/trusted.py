"""The code a concede config may name with ``_target_`` (Hydra's execution whitelist)."""

TRUSTED_TARGETS: list[str] = [
    "envs.*",
    "agents.*",
    "experiments.*",
    "stable_baselines3.*",
    "sb3_contrib.*",
    "optuna.samplers.*",
    "optuna.pruners.*",
    "hydra_plugins.*",
    "logging.*",
]
