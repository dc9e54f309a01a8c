"""The edge where Hydra configs become objects: where the configs are found
(:data:`CONFIG_PATH`), the code they may name (:mod:`.trusted`), typed settings
(:mod:`.settings`) and the scenario of a composed config (:mod:`.scenarios`)."""

CONFIG_PATH = "pkg://conf"
"""Hydra's search path for the shipped configs: the ``conf`` package, so that an installed
wheel finds them as well as a checkout."""
