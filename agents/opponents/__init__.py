"""Opponents a merchant's data scientist would build: uplift targeting learned from a
randomised decision log (:mod:`.uplift`) and a contextual bandit learned online in the
simulator (:mod:`.bandit`); trained once per scenario and cached (:mod:`.cache`)."""
