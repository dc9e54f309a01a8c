"""The edge where Hydra configs become objects: where the configs are found
(:data:`CONFIG_PATH`), the code they may name (:mod:`.trusted`), typed settings
(:mod:`.settings`) and the scenario of a composed config (:mod:`.scenarios`)."""

import warnings

CONFIG_PATH = "pkg://concede_conf"
"""Hydra's search path for the shipped configs: the ``concede_conf`` package (the folder
``conf/``), so that an installed wheel finds them as well as a checkout."""

USER_CONFIGS = "conf"
"""The folder of a user's own configs, beside where concede runs (``./conf/scenario/...``),
which the apps' configs add to Hydra's search path (``hydra.searchpath: [file://conf]``)."""

# Most folders concede runs from have no ./conf: Hydra's warning that the search path entry
# is missing says nothing to those users.
warnings.filterwarnings(
    "ignore", message=f"provider=hydra.searchpath in main, path={USER_CONFIGS} is not available"
)
