"""Decision makers for concede: baselines, the oracle, SB3 learners, export and serving."""
