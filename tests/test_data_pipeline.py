"""The grain pipeline: shapes, determinism, seeds, resumable state (also through Orbax), process sharding."""
from __future__ import annotations

import matplotlib.colors
import numpy as np
import pytest

from arbstyle import data
from arbstyle.data import augment
from test_data_samples import real_images, write_folder


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    images = real_images(20, short_side=40)
    write_folder(root / "content", images[:12])
    write_folder(root / "paintings", images[12:17])
    write_folder(root / "textures", images[17:], fmt="PNG")
    cfg = data.default_config()
    cfg.data_dir = str(root / "tfds")
    cfg.content = str(root / "content")
    cfg.style = f"{root / 'paintings'},{root / 'textures'}"
    cfg.content_size = 24
    cfg.content_resize = 32
    cfg.style_size = 24
    cfg.style_resize_extra = (2, 20)
    cfg.style_size_buckets = (16, 24)
    return cfg


def _take(iterator, steps):
    return [next(iterator) for _ in range(steps)]


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_batches_have_the_documented_shapes_and_ranges(config):
    batch = next(data.make_pipeline(config, seed=0, global_batch=4, process_index=0, process_count=1))
    assert batch["content"].shape == (4, 24, 24, 3) and batch["content"].dtype == np.float32
    assert batch["style"].shape == (4, 24, 24, 3) and batch["style"].dtype == np.float32
    for key in ("content", "style"):
        assert 0.0 <= batch[key].min() and batch[key].max() <= 1.0 and batch[key].std() > 0.02
    assert batch["style_source"].dtype == np.int32 and set(batch["style_source"]) <= {0, 1}
    assert batch["content_index"].shape == (4,) and batch["content_index"].max() < 12


def test_same_seed_same_batches_and_different_seeds_differ(config):
    first = _take(data.make_pipeline(config, seed=3, global_batch=4, process_index=0, process_count=1), 3)
    again = _take(data.make_pipeline(config, seed=3, global_batch=4, process_index=0, process_count=1), 3)
    other = _take(data.make_pipeline(config, seed=4, global_batch=4, process_index=0, process_count=1), 3)
    assert all(_same(a, b) for a, b in zip(first, again))
    assert not any(np.array_equal(a["content"], b["content"]) for a, b in zip(first, other))
    assert not any(np.array_equal(a["style"], b["style"]) for a, b in zip(first, other))
    # Content and style are independent shuffles: the pairing is not a fixed function of the content index.
    pairs = {(int(c), int(s)) for b in first + other for c, s in zip(b["content_index"], b["style_index"])}
    assert len(pairs) > len({c for c, _ in pairs})


def test_every_epoch_sees_every_image_once_in_a_new_order(config):
    cfg = data.resolve_config(config)
    cfg.style = cfg.style.split(",")[0]
    batches = _take(data.make_pipeline(cfg, seed=0, global_batch=4, process_index=0, process_count=1), 6)
    content = np.concatenate([b["content_index"] for b in batches])
    assert sorted(content[:12]) == list(range(12)) and sorted(content[12:24]) == list(range(12))
    assert list(content[:12]) != list(content[12:24])


def test_checkpointed_state_resumes_the_identical_sequence(config):
    iterator = data.make_pipeline(config, seed=1, global_batch=4, process_index=0, process_count=1)
    _take(iterator, 2)
    state = iterator.get_state()
    assert state == {"next_index": 2}
    expected = _take(iterator, 3)
    resumed = data.make_pipeline(config, seed=1, global_batch=4, process_index=0, process_count=1)
    resumed.set_state(state)
    assert all(_same(a, b) for a, b in zip(expected, _take(resumed, 3)))
    started = data.make_pipeline(config, seed=1, global_batch=4, process_index=0, process_count=1, start_step=2)
    assert _same(expected[0], next(started))


def test_state_round_trips_through_an_orbax_checkpoint(config, tmp_path):
    import grain
    import orbax.checkpoint as ocp

    iterator = data.make_pipeline(config, seed=2, global_batch=4, process_index=0, process_count=1)
    _take(iterator, 3)
    with ocp.CheckpointManager(tmp_path / "ckpt", item_handlers={"data": grain.checkpoint.CheckpointHandler()}) as mgr:
        mgr.save(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(iterator)))
        mgr.wait_until_finished()
    expected = next(iterator)
    fresh = data.make_pipeline(config, seed=2, global_batch=4, process_index=0, process_count=1)
    with ocp.CheckpointManager(tmp_path / "ckpt", item_handlers={"data": grain.checkpoint.CheckpointHandler()}) as mgr:
        mgr.restore(mgr.latest_step(), args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
    assert fresh.get_state() == {"next_index": 3}
    assert _same(expected, next(fresh))


def test_processes_read_disjoint_shards_that_make_up_the_single_process_batch(config):
    single = _take(data.make_pipeline(config, seed=5, global_batch=6, process_index=0, process_count=1), 2)
    shards = [_take(data.make_pipeline(config, seed=5, global_batch=6, process_index=p, process_count=3), 2)
              for p in range(3)]
    for step in range(2):
        for key in single[step]:
            joined = np.concatenate([shards[p][step][key] for p in range(3)])
            np.testing.assert_array_equal(joined, single[step][key])
    # Within the first epoch (12 contents, 2 steps x 6) no content image is read by two processes.
    seen = [set(np.concatenate([b["content_index"] for b in shards[p]])) for p in range(3)]
    assert all(len(seen[p]) == 4 for p in range(3))
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    with pytest.raises(ValueError, match="multiple of process_count"):
        data.make_pipeline(config, seed=5, global_batch=4, process_index=0, process_count=3)


def test_random_style_size_is_bucketed_per_step_and_shared_by_processes(config):
    cfg = data.resolve_config(config)
    cfg.style_random_size = True
    shapes = []
    for p in range(2):
        iterator = data.make_pipeline(cfg, seed=0, global_batch=4, process_index=p, process_count=2)
        shapes.append([next(iterator)["style"].shape for _ in range(8)])
    assert shapes[0] == shapes[1]
    assert {s[1:3] for s in shapes[0]} <= {(16, 16), (16, 24), (24, 16), (24, 24)}
    assert len(set(shapes[0])) > 1


def test_evaluation_pairs_are_centre_crops_without_augmentation(config):
    import io

    import tensorflow_datasets as tfds
    from PIL import Image

    a = data.fixed_pairs(config, 3, split="train")
    assert _same(a, data.fixed_pairs(config, 3, split="train"))
    raw = data.load(config.content, data_dir=config.data_dir).as_data_source(
        "train", decoders={"image": tfds.decode.SkipDecoding()})
    for i in range(3):
        img = Image.open(io.BytesIO(raw[int(a["content_index"][i])]["image"])).convert("RGB")
        w, h = img.size
        scale = 32 / min(w, h)  # content_resize, then the centred content_size window
        img = img.resize((max(32, round(w * scale)), max(32, round(h * scale))), Image.Resampling.BILINEAR)
        left, top = (img.size[0] - 24) // 2, (img.size[1] - 24) // 2
        expected = np.asarray(img.crop((left, top, left + 24, top + 24)), dtype=np.float32) / 255.0
        np.testing.assert_allclose(a["content"][i], expected, atol=1e-6)


def test_fixed_pairs_take_eval_specs_with_their_own_splits(config):
    cfg = data.resolve_config(config)
    with pytest.raises(ValueError, match="non-empty split 'val'"):
        data.fixed_pairs(cfg, 2, split="val")  # folder datasets only have 'train'
    cfg.eval_content = f"{cfg.content}:train"
    cfg.eval_style = f"{cfg.style.split(',')[1]}:train[:2]"
    pairs = data.fixed_pairs(cfg, 2, split="val")
    assert pairs["content"].shape == (2, 24, 24, 3)
    assert set(pairs["style_index"]) <= {0, 1} and set(pairs["style_source"]) == {0}
    # A source left out (no such split) keeps the others' positions and weights.
    cfg.eval_style = f"{cfg.style.split(',')[0]}:nosuchsplit,{cfg.style.split(',')[1]}:train"
    cfg.style_weights = "1,2"
    assert set(data.fixed_pairs(cfg, 2)["style_source"]) == {1}


def test_style_weights_set_the_mixture(config):
    cfg = data.resolve_config(config)
    cfg.style_weights = "3,1"
    pairs = data.global_pairs(cfg, seed=0, global_batch=4)
    style_stream = pairs._parent._parents[1]  # the mixed style stream, before the per-pair transform
    sources = np.array([style_stream[i]["source"] for i in range(100)])
    assert abs((sources == 0).mean() - 0.75) < 0.05
    cfg.style_weights = "0,1"
    only = data.global_pairs(cfg, seed=0, global_batch=4)._parent._parents[1]
    assert {only[i]["source"] for i in range(8)} == {1}


# ---- augmentation ops -----------------------------------------------------------------------------------------

def _photo(size=64):
    return real_images(1, short_side=size)[0][1].crop((0, 0, size, size))


def test_colour_jitter_matches_a_float_reference():
    """Magenta's three ops done in float with matplotlib's HSV, against our 8-bit lookup tables."""
    image = _photo()
    pixels = np.asarray(image, dtype=np.float64) / 255.0
    jitter = augment.ColorJitter()
    errors = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        delta, factor, shift = rng.uniform(-0.8, 0.8), rng.uniform(0.5, 1.5), rng.uniform(-0.2, 0.2)
        hsv = matplotlib.colors.rgb_to_hsv(np.clip(pixels + delta, 0.0, 1.0))
        hsv[..., 1] = np.clip(hsv[..., 1] * factor, 0.0, 1.0)
        hsv[..., 0] = (hsv[..., 0] + shift) % 1.0
        expected = matplotlib.colors.hsv_to_rgb(hsv) * 255.0
        got = np.asarray(jitter(image, np.random.default_rng(seed)), dtype=np.float64)
        errors.append(np.abs(got - expected))
    errors = np.stack(errors)
    assert errors.mean() < 1.5 and np.percentile(errors, 99) < 6.0, (errors.mean(), np.percentile(errors, 99), errors.max())


def test_colour_jitter_identity_and_pure_hue_shift():
    image = _photo()
    none = augment.ColorJitter(brightness=0.0, saturation=(1.0, 1.0), hue=0.0)
    np.testing.assert_array_equal(np.asarray(none(image, np.random.default_rng(0))), np.asarray(image))
    shifted = augment.ColorJitter(brightness=0.0, saturation=(1.0, 1.0), hue=0.3)(image, np.random.default_rng(1))
    before = matplotlib.colors.rgb_to_hsv(np.asarray(image) / 255.0)
    after = matplotlib.colors.rgb_to_hsv(np.asarray(shifted) / 255.0)
    # A hue shift only turns the colour wheel: brightness (value) stays, hue moves for coloured pixels.
    assert np.abs(after[..., 2] - before[..., 2]).max() < 3 / 255
    coloured = before[..., 1] > 0.3
    turn = np.abs((after[..., 0] - before[..., 0] + 0.5) % 1.0 - 0.5)[coloured]
    assert np.median(turn) > 0.02


def test_flips_and_crops():
    image = _photo()
    arr = np.asarray(image)
    seen = set()
    for seed in range(16):
        out = np.asarray(augment.random_flips(image, np.random.default_rng(seed)))
        kind = next(k for k, ref in (("none", arr), ("lr", arr[:, ::-1]), ("ud", arr[::-1]), ("both", arr[::-1, ::-1]))
                    if np.array_equal(out, ref))
        seen.add(kind)
    assert seen == {"none", "lr", "ud", "both"}
    centre = np.asarray(augment.crop(image, 20, 30, None))
    np.testing.assert_array_equal(centre, arr[22:42, 17:47])
    with pytest.raises(ValueError, match="cannot crop"):
        augment.crop(image, 65, 10, None)
