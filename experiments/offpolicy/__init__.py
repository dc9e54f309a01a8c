"""Off-policy evaluation of policies on decision logs (:mod:`agents.logs` format).

:func:`evaluate_offpolicy` (in :mod:`.evaluation`) is the entry point: estimators
(:mod:`.estimators`), their value model (:mod:`.fqe`), intervals (:mod:`.bootstrap`),
estimated propensities (:mod:`.propensity`), diagnostics (:mod:`.diagnostics`), the
policies' choices on the logged rows (:mod:`.targets`), the log as arrays (:mod:`.data`).
"""

from experiments.offpolicy.evaluation import OPESettings, evaluate_offpolicy, recommended

__all__ = ["OPESettings", "evaluate_offpolicy", "recommended"]
