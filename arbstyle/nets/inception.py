"""Inception-v3 in TF-slim's layout (Szegedy et al. 2016), as the style predictor of Ghiasi et al. 2017 uses it.

Names follow slim's endpoints (Conv2d_1a_3x3 ... Mixed_7c) so that checkpoints map one to one. The stem is VALID
except Conv2d_2b_3x3; inside the mixed blocks every conv and pool is SAME, and 3x3 average pools exclude the
padding from the mean (TensorFlow's behaviour), except the stride-2 reductions which are VALID.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from arbstyle.nets.layers import ConvBN

ENDPOINTS = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_3a_3x3", "Conv2d_3b_1x1",
             "Conv2d_4a_3x3", "MaxPool_5a_3x3", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
             "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]
CHANNELS = {"Mixed_5b": 256, "Mixed_5c": 288, "Mixed_5d": 288, "Mixed_6a": 768, "Mixed_6b": 768, "Mixed_6c": 768,
            "Mixed_6d": 768, "Mixed_6e": 768, "Mixed_7a": 1280, "Mixed_7b": 2048, "Mixed_7c": 2048}


def max_pool(x, stride: int = 2):
    return nnx.max_pool(x, (3, 3), strides=(stride, stride), padding="VALID")


def avg_pool_same(x):
    """3x3 stride-1 SAME average pool that divides by the number of real (unpadded) pixels, like TensorFlow's."""
    window, strides, pad = (1, 3, 3, 1), (1, 1, 1, 1), ((0, 0), (1, 1), (1, 1), (0, 0))
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pad)
    ones = jnp.ones((1, x.shape[1], x.shape[2], 1), x.dtype)
    count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, pad)
    return total / count


def max_pool_same(x):
    return nnx.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))


class Branches(nnx.Module):
    """A mixed block: parallel chains of ConvBN (a chain may start with a pool) concatenated on channels."""

    def __init__(self, in_ch: int, chains: list[list], *, rngs: nnx.Rngs):
        # chains: each a list of ("pool", kind) or (out_ch, kernel, stride, padding)
        self.pools = [[step[1] for step in chain if step[0] == "pool"] for chain in chains]
        self.branches = nnx.List()
        for chain in chains:
            ch, convs = in_ch, nnx.List()
            for step in chain:
                if step[0] == "pool":
                    continue
                out_ch, kernel, stride, padding = step
                convs.append(ConvBN(ch, out_ch, kernel, stride, padding, rngs=rngs))
                ch = out_ch
            self.branches.append(convs)

    def __call__(self, x):
        outs = []
        for pools, convs in zip(self.pools, self.branches):
            y = x
            for kind in pools:  # a branch's pool always precedes its convs
                y = {"avg": avg_pool_same, "max_same": max_pool_same, "max_valid": max_pool}[kind](y)
            for conv in convs:
                y = conv(y)
            outs.append(y)
        return jnp.concatenate(outs, axis=-1)


def _block_a(in_ch, pool_ch):  # Mixed_5b..5d
    return [[(64, 1, 1, "SAME")], [(48, 1, 1, "SAME"), (64, 5, 1, "SAME")],
            [(64, 1, 1, "SAME"), (96, 3, 1, "SAME"), (96, 3, 1, "SAME")], [("pool", "avg"), (pool_ch, 1, 1, "SAME")]]


def _block_b():  # Mixed_6a
    return [[(384, 3, 2, "VALID")], [(64, 1, 1, "SAME"), (96, 3, 1, "SAME"), (96, 3, 2, "VALID")],
            [("pool", "max_valid")]]


def _block_c(mid):  # Mixed_6b..6e: factorised 7x7
    return [[(192, 1, 1, "SAME")],
            [(mid, 1, 1, "SAME"), (mid, (1, 7), 1, "SAME"), (192, (7, 1), 1, "SAME")],
            [(mid, 1, 1, "SAME"), (mid, (7, 1), 1, "SAME"), (mid, (1, 7), 1, "SAME"), (mid, (7, 1), 1, "SAME"),
             (192, (1, 7), 1, "SAME")],
            [("pool", "avg"), (192, 1, 1, "SAME")]]


def _block_d():  # Mixed_7a
    return [[(192, 1, 1, "SAME"), (320, 3, 2, "VALID")],
            [(192, 1, 1, "SAME"), (192, (1, 7), 1, "SAME"), (192, (7, 1), 1, "SAME"), (192, 3, 2, "VALID")],
            [("pool", "max_valid")]]


class BlockE(nnx.Module):
    """Mixed_7b/7c: branches that split into parallel 1x3 and 3x1 convs."""

    def __init__(self, in_ch: int, pool: str, *, rngs: nnx.Rngs):
        self.pool = pool
        self.branch_0 = ConvBN(in_ch, 320, 1, rngs=rngs)
        self.branch_1 = ConvBN(in_ch, 384, 1, rngs=rngs)
        self.branch_1_1x3 = ConvBN(384, 384, (1, 3), rngs=rngs)
        self.branch_1_3x1 = ConvBN(384, 384, (3, 1), rngs=rngs)
        self.branch_2 = ConvBN(in_ch, 448, 1, rngs=rngs)
        self.branch_2_3x3 = ConvBN(448, 384, 3, rngs=rngs)
        self.branch_2_1x3 = ConvBN(384, 384, (1, 3), rngs=rngs)
        self.branch_2_3x1 = ConvBN(384, 384, (3, 1), rngs=rngs)
        self.branch_3 = ConvBN(in_ch, 192, 1, rngs=rngs)

    def __call__(self, x):
        b1 = self.branch_1(x)
        b2 = self.branch_2_3x3(self.branch_2(x))
        pooled = avg_pool_same(x) if self.pool == "avg" else max_pool_same(x)
        return jnp.concatenate([self.branch_0(x), self.branch_1_1x3(b1), self.branch_1_3x1(b1),
                                self.branch_2_1x3(b2), self.branch_2_3x1(b2), self.branch_3(pooled)], axis=-1)


class InceptionV3(nnx.Module):
    """The trunk up to `final_endpoint`. Input: images already scaled to [-1, 1].

    `mixed_7c_pool` is "avg" in slim's checkpoint and "max" in TensorFlow's 2015 graph that FID uses.
    """

    def __init__(self, final_endpoint: str = "Mixed_6e", *, mixed_7c_pool: str = "avg", rngs: nnx.Rngs):
        self.endpoints = ENDPOINTS[: ENDPOINTS.index(final_endpoint) + 1]
        self.out_channels = CHANNELS.get(final_endpoint, 192)
        have = set(self.endpoints)
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, 2, "VALID", rngs=rngs)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3, 1, "VALID", rngs=rngs)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, 1, "SAME", rngs=rngs)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1, 1, "VALID", rngs=rngs)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3, 1, "VALID", rngs=rngs)
        blocks = {"Mixed_5b": (192, _block_a(192, 32)), "Mixed_5c": (256, _block_a(256, 64)),
                  "Mixed_5d": (288, _block_a(288, 64)), "Mixed_6a": (288, _block_b()),
                  "Mixed_6b": (768, _block_c(128)), "Mixed_6c": (768, _block_c(160)),
                  "Mixed_6d": (768, _block_c(160)), "Mixed_6e": (768, _block_c(192)),
                  "Mixed_7a": (768, _block_d())}
        for name, (in_ch, chains) in blocks.items():
            if name in have:
                setattr(self, name, Branches(in_ch, chains, rngs=rngs))
        if "Mixed_7b" in have:
            self.Mixed_7b = BlockE(1280, "avg", rngs=rngs)
        if "Mixed_7c" in have:
            self.Mixed_7c = BlockE(2048, mixed_7c_pool, rngs=rngs)

    def __call__(self, x, *, return_endpoints: bool = False):
        found = {}
        for name in self.endpoints:
            x = max_pool(x) if name.startswith("MaxPool") else getattr(self, name)(x)
            found[name] = x
        return (x, found) if return_endpoints else x
