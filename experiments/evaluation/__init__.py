"""Evaluating policies on the same simulated shoppers: the paired evaluation
(:mod:`.paired`), its KPIs and intervals (:mod:`.kpis`), the references and verdict of a
training run (:mod:`.references`), console tables (:mod:`.console`), number formatting
(:mod:`.formatting`) and the evaluation file (:mod:`.evaluation_file`)."""
