"""Defaults shared by the `Stylizer` API and the command line, in a module without JAX.

`arbstyle stylize --help` builds its parser from these before anything heavy is imported, so that argument
errors and help come back at Python's start-up speed; `arbstyle.inference.stylize` and `arbstyle.inference.tiling` use
the same values.
"""

# Our own model: on all 1,892 validation pairs it scores a lower ArtFID than Magenta's released mobile model at
# 384 and 512 px (README, "Our own model"); `--model magenta-mobile` is the imported one.
DEFAULT_MODEL = "ghiasi-inception"
# Imported int8 models run with float activations by default: ~8x faster than replaying the int8 graph exactly
# on CPU, tileable, and within 0.025 mean absolute difference of it (astronaut x brick, 512 px).
ACTIVATIONS = ("float", "exact")
DEFAULT_ACTIVATIONS = "float"
STYLE_SIZE = 256  # the predictor was trained on 256 px styles
# Largest interior side of a tile (input pixels); windows are a halo wider. 2048 keeps a window near the size
# the untiled path handles comfortably while wasting little on halos (4096 -> 4 windows of 2080 for contract).
DEFAULT_TILE = 2048
