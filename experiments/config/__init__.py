"""The edge where Hydra configs become objects: where the configs are found
(:data:`CONFIG_PATH`), the code they may name (:mod:`.trusted`), typed settings
(:mod:`.settings`) and the scenario of a composed config (:mod:`.scenarios`)."""

CONFIG_PATH = "pkg://concede_conf"
"""Hydra's search path for the shipped configs: the ``concede_conf`` package (the folder
``conf/``), so that an installed wheel finds them as well as a checkout."""
