"""arbstyle: arbitrary neural style transfer in JAX (Ghiasi et al. 2017)."""
from arbstyle._xla import configure_cpu_flags as _configure_cpu_flags

_configure_cpu_flags()  # must run before JAX initialises a backend

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy so that `import arbstyle` stays cheap and the CLI starts fast.
    if name == "Stylizer":
        from arbstyle.inference.stylize import Stylizer
        return Stylizer
    if name == "load_model":
        from arbstyle.weights.registry import load_model
        return load_model
    raise AttributeError(name)


__all__ = ["Stylizer", "load_model", "__version__"]
