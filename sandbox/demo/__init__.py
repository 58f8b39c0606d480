"""``task demo`` and ``task dev``: the whole system on one machine, on embedded defaults."""
