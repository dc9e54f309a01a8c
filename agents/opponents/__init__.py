"""Opponents a merchant's data scientist would build: uplift targeting learned from a
randomised decision log (:mod:`.uplift`) and a contextual bandit learned online in the
simulator (:mod:`.bandit`); trained once per scenario and cached (:mod:`.cache`)."""

#: how an opponent learned, as its ``info["trained_on"]`` says (the report reads it)
FROM_RANDOMISED_LOG = "randomised decision log"
ONLINE_IN_SIMULATOR = "online in the simulator"
