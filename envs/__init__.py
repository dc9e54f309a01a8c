"""concede's simulator: hesitant shoppers and the merchant's margins (numpy, gymnasium, numba).

Importing this package registers ``concede/HesitantShopper-v0``::

    import gymnasium as gym
    import envs

    env = gym.make("concede/HesitantShopper-v0", scenario="black_friday")
    vec = gym.make_vec("concede/HesitantShopper-v0", num_envs=1024, scenario="default")
"""

from gymnasium.envs.registration import register, registry

from envs.core import EVENT_NAMES, ShopperCore
from envs.ledger import LEDGER_TERMS
from envs.observation import feature_schema
from envs.scenario import Concession, ConcessionKind, Product, Scenario, ScenarioError, Segment
from envs.scenario_files import available_scenarios, load_scenario
from envs.shopper_env import HesitantShopperEnv
from envs.vector import HesitantShopperVectorEnv

ENV_ID = "concede/HesitantShopper-v0"

if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="envs.shopper_env:HesitantShopperEnv",
        vector_entry_point="envs.vector:HesitantShopperVectorEnv",
    )

__all__ = [
    "ENV_ID",
    "EVENT_NAMES",
    "LEDGER_TERMS",
    "Concession",
    "ConcessionKind",
    "HesitantShopperEnv",
    "HesitantShopperVectorEnv",
    "Product",
    "Scenario",
    "ScenarioError",
    "Segment",
    "ShopperCore",
    "available_scenarios",
    "feature_schema",
    "load_scenario",
]
