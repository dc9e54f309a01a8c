"""The benchmarks behind ``concede bench <name>``, one module each: the
simulator (:mod:`.env`), the paired evaluation (:mod:`.evaluate`), training
(:mod:`.train`) and serving (:mod:`.serve`)."""
