"""The networks (Flax NNX modules, one per file).

The transformer's size grid lives here rather than in `transformer.py` so that inference code running stored
programs (`arbstyle.inference.programs`) can pad contents to it without importing Flax.
"""

# The stride-2 convs and the two x2 upsamplings round odd sizes; padding to this multiple keeps every shape exact.
SIZE_MULTIPLE = 4
