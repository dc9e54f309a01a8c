"""Training an agent: the run from a config (:mod:`.job`), the run itself with its
evaluations and checkpoints (:mod:`.run`), and what a resumed run reads back
(:mod:`.state`)."""
