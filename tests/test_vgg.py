"""VGG-16 loss network: real torchvision weights, correct layout, names, pooling and early stopping."""
import functools
import hashlib

import jax
import numpy as np
import pytest
import skimage.data
from flax import nnx
from PIL import Image

from arbstyle.nets.vgg import (CHANNELS, IMAGENET_MEAN, IMAGENET_STD, RELU_NAMES, VGG16, VGG16_CKPT_SHA256,
                               load_vgg16, vgg16_arrays, weights_path)


def _sample(name, size=96):
    img = Image.fromarray(getattr(skimage.data, name)()).convert("RGB").resize((size, size), Image.BILINEAR)
    return np.asarray(img, np.float32) / 255.0


@pytest.fixture(scope="module")
def vgg():
    return load_vgg16()


def test_weights_file_is_the_pinned_torchvision_vgg16():
    assert hashlib.sha256(weights_path().read_bytes()).hexdigest() == VGG16_CKPT_SHA256
    arrays = vgg16_arrays()
    assert len(arrays) == 13
    n_params = sum(k.size + b.size for k, b in arrays.values())
    assert n_params == 14_714_688  # torchvision vgg16().features parameter count
    # torchvision vgg16(weights=IMAGENET1K_V1).features[0].weight[0, 0] (out 0, red input channel), as
    # printed to 4 decimals by torch; rows are kernel height. A kh/kw transposition would fail here.
    expected = np.array([[-0.5537, 0.1427, 0.5290], [-0.5831, 0.3566, 0.7657], [-0.6902, -0.0480, 0.4841]])
    np.testing.assert_allclose(arrays["conv1_1"][0][:, :, 0, 0], expected, atol=6e-5)


def test_relu1_1_matches_a_direct_numpy_convolution(vgg):
    img = _sample("chelsea", 20)[:17]  # odd height: padding at the borders matters
    kernel, bias = vgg16_arrays()["conv1_1"]
    x = (img - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))  # zero padding of the *normalised* input, as torchvision
    h, w = img.shape[:2]
    ref = np.zeros((h, w, 64))
    for dy in range(3):
        for dx in range(3):
            ref += xp[dy:dy + h, dx:dx + w] @ kernel[dy, dx].astype(np.float64)
    ref = np.maximum(ref + bias, 0)
    got = np.asarray(vgg(img, ["relu1_1"])["relu1_1"])
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_named_layers_shapes_and_pooling(vgg):
    img = _sample("coffee", 48)[:45, :37]
    feats = vgg(np.stack([img, img[::-1]]), RELU_NAMES)
    assert list(feats) == list(RELU_NAMES)
    for name, f in feats.items():
        block = int(name[4])
        h, w = 45, 37
        for _ in range(block - 1):
            h, w = h // 2, w // 2
        assert f.shape == (2, h, w, CHANNELS[name]), name
    max_vgg = load_vgg16("max")
    f_max = np.asarray(max_vgg(img, ["relu2_1"])["relu2_1"])
    f_avg = np.asarray(vgg(img, ["relu2_1"])["relu2_1"])
    assert f_max.shape == f_avg.shape and not np.allclose(f_max, f_avg)
    # relu1_* do not depend on pooling.
    np.testing.assert_array_equal(max_vgg(img, ["relu1_2"])["relu1_2"], vgg(img, ["relu1_2"])["relu1_2"])
    with pytest.raises(ValueError, match="relu9_9"):
        vgg(img, ["relu9_9"])
    with pytest.raises(ValueError, match="pooling"):
        VGG16("median")


def test_stops_at_the_deepest_requested_layer(vgg):
    img = np.zeros((1, 32, 32, 3), np.float32)

    def n_convs(layers):
        jaxpr = jax.make_jaxpr(lambda x: vgg(x, layers))(img)
        return sum(eqn.primitive.name == "conv_general_dilated" for eqn in jaxpr.jaxpr.eqns)

    assert n_convs(["relu1_1"]) == 1
    assert n_convs(["relu3_1", "relu1_2"]) == 5
    assert n_convs(["relu5_3"]) == 13


def _descriptor(model, img):
    graphdef, state = nnx.split(model)
    f = np.asarray(_relu4_3(graphdef, state, img)).mean(axis=(0, 1))
    return f / np.linalg.norm(f)


@functools.partial(jax.jit, static_argnums=0)
def _relu4_3(graphdef, state, img):  # one compilation serves both weight sets and all images
    return nnx.merge(graphdef, state)(img, ["relu4_3"])["relu4_3"]


def _margin(model):
    """min cos(real A, real B) - max cos(real A, A's own pixels shuffled), on relu4_3 channel means.

    Shuffling keeps the colour histogram but destroys structure: a trained network sees two different
    photos as more alike than a photo and its own shuffled pixels; an untrained one barely tells them apart.
    """
    rng = np.random.default_rng(0)
    names = ["astronaut", "chelsea", "coffee"]
    real = {n: _descriptor(model, _sample(n)) for n in names}
    shuffled = {}
    for n in names:
        pixels = _sample(n).reshape(-1, 3).copy()
        rng.shuffle(pixels)
        shuffled[n] = _descriptor(model, pixels.reshape(96, 96, 3))
    real_real = min(real[a] @ real[b] for a in names for b in names if a < b)
    real_shuffled = max(real[n] @ shuffled[n] for n in names)
    return real_real - real_shuffled


def test_real_image_features_differ_from_shuffled_pixels(vgg):
    assert _margin(vgg) > 0.25  # measured ~0.40 with the torchvision weights
    # Control: the same statistic with untrained (He-initialised) weights shows no such margin.
    assert _margin(VGG16(seed=0)) < 0.1
