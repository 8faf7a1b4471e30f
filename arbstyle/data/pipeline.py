"""The grain input pipeline: (content, style) training pairs from TFDS datasets, deterministic and resumable.

The pipeline defines one global, infinite sequence of pairs that does not depend on how many processes read it:

    pair g = (content stream[g], style stream[g])         independent shuffles, reshuffled every epoch
    global batch s = pairs [s*B, (s+1)*B)                   B = global_batch
    process p of P reads pairs [s*B + p*B/P, s*B + (p+1)*B/P) of every global batch, and nothing else.

Each pair's augmentation is drawn from an RNG seeded by (seed, g), and a step's random style size from
(seed, s). So concatenating the local batches of all processes in process order gives exactly the batch a single
process would produce, a run restarted with a different process count sees the same data, and the iterator
state is just the step: `{'next_index': s}` (grain's own state format, checkpointable with Orbax).
"""
from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any, Sequence

import grain
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from arbstyle.data import augment, catalog

log = logging.getLogger("arbstyle.data")


def default_config() -> ml_collections.ConfigDict:
    """Every knob of the pipeline, with the defaults used by the shared-data experiments."""
    c = ml_collections.ConfigDict()
    c.data_dir = ""  # TFDS data_dir; "" -> catalog.default_data_dir() ($ARBSTYLE_TFDS_DIR or <cache>/tfds)
    c.manual_dir = ""  # archives for painter_by_numbers, dtd, imagenet_content, coco_content
    # Dataset specs (see catalog): comma-separated; "name:split" pins a split, else make_pipeline's split is used.
    c.content = "shared_content"
    c.content_weights = ""  # "" -> in proportion to dataset sizes; else e.g. "3,1"
    c.style = "shared_paintings,shared_textures"
    c.style_weights = ""
    # Specs for fixed_pairs (sample grids); "" -> content / style with fixed_pairs' split. Pin splits here when
    # the datasets name them differently, e.g. "imagenet_content:validation" and "painter_by_numbers:test".
    c.eval_content = ""
    c.eval_style = ""
    # Content: short side resized to content_resize (0 -> content_size), then a content_size square crop.
    c.content_size = 256
    c.content_resize = 0
    c.content_crop = "random"  # "random" | "center" (evaluation always centres)
    c.content_flip = False
    # Style: Magenta's augmentation when style_augment (training only).
    c.style_size = 256
    c.style_augment = True
    c.brightness = 0.8
    c.saturation = (0.5, 1.5)
    c.hue = 0.2
    c.style_resize_extra = (2, 200)  # short side drawn uniformly from [size + lo, size + hi), then random crop
    # Magenta resized each batch's styles to a random size in [128, 300); we draw from a few buckets so a jitted
    # step compiles once per shape: len(buckets) shapes, or len(buckets)**2 with style_random_aspect.
    c.style_random_size = False
    c.style_size_buckets = (128, 192, 256)
    c.style_random_aspect = True
    # Reading: batches are assembled on this many threads, this many batches ahead.
    c.num_threads = 2
    c.prefetch = 4
    return c


def resolve_config(config: Any = None) -> ml_collections.ConfigDict:
    """default_config() updated with `config` (a ConfigDict, a dict, or None); unknown keys are an error."""
    merged = default_config()
    if config is None:
        return merged
    items = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
    unknown = sorted(set(items) - set(merged.keys()))
    if unknown:
        raise ValueError(f"unknown data config key(s): {', '.join(unknown)}")
    merged.update(items)
    return merged


def _seeds(seed: int, tag: str, count: int = 1) -> list[int]:
    # Independent 32-bit seeds per purpose: grain's shuffle uses seed + epoch, so nearby seeds would correlate.
    tags = [ord(ch) for ch in tag]
    return [int(x) for x in np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *tags]).generate_state(count)]


def split_specs(text: str | Sequence[str]) -> list[str]:
    items = text.split(",") if isinstance(text, str) else list(text)
    return [item.strip() for item in items if item and item.strip()]


def prepare(config=None) -> dict[str, tfds.core.DatasetBuilder]:
    """Build every dataset a pipeline config names (content and style lists), {spec: builder}.

    On several hosts sharing one filesystem, call this on process 0 and let the others wait at a barrier before
    make_pipeline: two processes building the same dataset at once would race on the final rename.
    """
    cfg = resolve_config(config)
    out = {}
    for spec in [*split_specs(cfg.content), *split_specs(cfg.style)]:
        base, _ = catalog.without_split(spec)
        out[base] = catalog.load(base, data_dir=cfg.data_dir or None, manual_dir=cfg.manual_dir or None)
    return out


def _weights(text: str | Sequence[float], count: int) -> list[float] | None:
    values = [float(v) for v in (split_specs(text) if isinstance(text, str) else text)]
    if not values:
        return None
    if len(values) != count or min(values) < 0 or sum(values) <= 0:
        raise ValueError(f"weights {values} do not fit {count} dataset(s)")
    return values


def _has_split(builder: tfds.core.DatasetBuilder, split: str) -> bool:
    names = {re.sub(r"\[.*\]$", "", part.strip()) for part in split.split("+")}
    return names <= set(builder.info.splits)


def _open_sources(specs: str | Sequence[str], split: str, cfg) -> list[tuple[int, Any]]:
    """[(position in the spec list, random-access source of {'image': bytes, ...})] for each spec whose split
    exists and is non-empty; the position is what `*_source` reports and what weights are matched by."""
    opened = []
    for position, spec in enumerate(split_specs(specs)):
        load_spec, pinned = catalog.without_split(spec)
        builder = catalog.load(load_spec, data_dir=cfg.data_dir or None, manual_dir=cfg.manual_dir or None)
        want = pinned or split
        if not _has_split(builder, want):
            log.info("%s has no split %r; left out of this pipeline", spec, want)
            continue
        source = builder.as_data_source(want, decoders={"image": tfds.decode.SkipDecoding()})
        if len(source) == 0:
            log.info("%s[%s] is empty; left out", spec, want)
            continue
        opened.append((position, source))
    if not opened:
        raise ValueError(f"no dataset among {specs!r} has a non-empty split {split!r}")
    return opened


@dataclasses.dataclass(frozen=True)
class _Tag:
    source_id: int
    length: int

    def __call__(self, index: int, record: dict) -> dict:
        # Past the first epoch grain passes epoch * length + i here (and reads record i): keep the record index.
        return {"image": record["image"], "index": index % self.length, "source": self.source_id}


def _stream(specs, weights_text, split: str, cfg, seed: int) -> grain.MapDataset:
    """Shuffled (differently every epoch), endlessly repeated, and mixed by weight when there are several."""
    sources = _open_sources(specs, split, cfg)
    weights = _weights(weights_text, len(split_specs(specs)))
    if weights is not None:
        sources = [(pos, src) for pos, src in sources if weights[pos] > 0]
        if not sources:
            raise ValueError(f"every dataset of {specs!r} with split {split!r} has weight 0")
    seeds = _seeds(seed, "shuffle", len(split_specs(specs)))
    streams = [grain.MapDataset.source(src).map_with_index(_Tag(pos, len(src))).shuffle(seed=seeds[pos]).repeat()
               for pos, src in sources]
    if len(streams) == 1:
        return streams[0]
    mix = [weights[pos] for pos, _ in sources] if weights else [float(len(src)) for _, src in sources]
    return grain.MapDataset.mix(streams, mix)


@dataclasses.dataclass(frozen=True)
class PairTransform:
    """(global index g, (content record, style record)) -> one training example; a pure function of (seed, g)."""

    seed: int
    global_batch: int
    training: bool
    content_size: int
    content_resize: int
    content_random_crop: bool
    content_flip: bool
    style_size: int
    style_augment: bool
    jitter: augment.ColorJitter
    style_resize_extra: tuple[int, int]
    style_random_size: bool
    style_size_buckets: tuple[int, ...]
    style_random_aspect: bool

    @classmethod
    def from_config(cls, cfg, *, seed: int, global_batch: int, training: bool) -> "PairTransform":
        lo, hi = (int(v) for v in cfg.style_resize_extra)
        if not 0 <= lo < hi:
            raise ValueError(f"style_resize_extra must be 0 <= lo < hi, got {(lo, hi)}")
        if cfg.content_crop not in ("random", "center"):
            raise ValueError(f"content_crop must be 'random' or 'center', got {cfg.content_crop!r}")
        resize = int(cfg.content_resize) or int(cfg.content_size)
        if resize < cfg.content_size:
            raise ValueError(f"content_resize {resize} is smaller than content_size {cfg.content_size}")
        return cls(
            seed=_seeds(seed, "augment")[0], global_batch=global_batch, training=training,
            content_size=int(cfg.content_size), content_resize=resize,
            content_random_crop=training and cfg.content_crop == "random", content_flip=training and cfg.content_flip,
            style_size=int(cfg.style_size), style_augment=training and cfg.style_augment,
            jitter=augment.ColorJitter(float(cfg.brightness), tuple(float(v) for v in cfg.saturation), float(cfg.hue)),
            style_resize_extra=(lo, hi), style_random_size=training and cfg.style_random_size,
            style_size_buckets=tuple(int(v) for v in cfg.style_size_buckets),
            style_random_aspect=bool(cfg.style_random_aspect),
        )

    def style_shape(self, step: int) -> tuple[int, int]:
        """The (h, w) of every style image in global batch `step` (the same on all processes)."""
        if not self.style_random_size:
            return self.style_size, self.style_size
        rng = np.random.default_rng([self.seed, 2, step])
        height = int(rng.choice(self.style_size_buckets))
        width = int(rng.choice(self.style_size_buckets)) if self.style_random_aspect else height
        return height, width

    def content(self, data: bytes, rng: np.random.Generator) -> np.ndarray:
        img = augment.resize_short(augment.decode(data, self.content_resize), self.content_resize)
        img = augment.crop(img, self.content_size, self.content_size, rng if self.content_random_crop else None)
        out = augment.to_float(img)
        if self.content_flip and rng.random() < 0.5:
            out = np.ascontiguousarray(out[:, ::-1])
        return out

    def style(self, data: bytes, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        size = self.style_size
        if self.style_augment:
            short = size + int(rng.integers(*self.style_resize_extra))
            img = augment.resize_short(augment.decode(data, short), short)
            img = augment.crop(img, size, size, rng)
        else:
            img = augment.resize_short(augment.decode(data, size), size)
            img = augment.crop(img, size, size, rng if self.training else None)
        if shape != (size, size):
            # Magenta resized the whole batch of crops to the step's random size (aspect not kept).
            img = img.resize((shape[1], shape[0]), augment.RESAMPLE)
        if self.style_augment:
            img = self.jitter(augment.random_flips(img, rng), rng)
        return augment.to_float(img)

    def __call__(self, index: int, pair) -> dict:
        content_rec, style_rec = pair
        content = self.content(content_rec["image"], np.random.default_rng([self.seed, 0, index]))
        style = self.style(style_rec["image"], np.random.default_rng([self.seed, 1, index]),
                           self.style_shape(index // self.global_batch))
        return {
            "content": content,
            "style": style,
            "content_source": np.int32(content_rec["source"]),
            "content_index": np.int64(content_rec["index"]),
            "style_source": np.int32(style_rec["source"]),
            "style_index": np.int64(style_rec["index"]),
        }


def _process(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    if process_index is None or process_count is None:
        shard = grain.sharding.ShardByJaxProcess()  # jax.process_index() / jax.process_count()
        process_index = shard.shard_index if process_index is None else process_index
        process_count = shard.shard_count if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in [0, {process_count})")
    return int(process_index), int(process_count)


def global_pairs(config=None, *, split: str = "train", seed: int, global_batch: int, train: bool | None = None
                 ) -> grain.MapDataset:
    """The process-independent, infinite MapDataset of transformed pairs (index g = position in the stream)."""
    cfg = resolve_config(config)
    training = (split == "train") if train is None else bool(train)
    content = _stream(cfg.content, cfg.content_weights, split, cfg, _seeds(seed, "content")[0])
    style = _stream(cfg.style, cfg.style_weights, split, cfg, _seeds(seed, "style")[0])
    transform = PairTransform.from_config(cfg, seed=seed, global_batch=global_batch, training=training)
    return grain.experimental.ZipMapDataset(parents=[content, style]).map_with_index(transform)


def make_pipeline(config=None, *, split: str = "train", seed: int, global_batch: int,
                  process_index: int | None = None, process_count: int | None = None,
                  train: bool | None = None, start_step: int = 0) -> grain.DatasetIterator:
    """Iterator over this process's share of each global batch.

    Yields dicts of numpy arrays, local batch L = global_batch / process_count:
      content (L, content_size, content_size, 3) float32 in [0, 1]
      style   (L, h, w, 3) float32 in [0, 1]; (h, w) = (style_size, style_size) unless style_random_size
      content_source, style_source (L,) int32: which dataset of the comma-separated list each image came from
      content_index, style_index (L,) int64: record index within that dataset's split
    train: augment and crop randomly (default: split == 'train'); otherwise centre crops, no augmentation.
    process_index / process_count: default jax.process_index() / jax.process_count().
    start_step: the global step to start from (equivalent to set_state({'next_index': start_step})).
    State: it.get_state() == {'next_index': steps consumed}; it.set_state(state) resumes the same sequence.
    """
    cfg = resolve_config(config)
    index, count = _process(process_index, process_count)
    if global_batch <= 0 or global_batch % count:
        raise ValueError(f"global_batch {global_batch} must be a positive multiple of process_count {count}")
    local = global_batch // count
    pairs = global_pairs(cfg, split=split, seed=seed, global_batch=global_batch, train=train)
    batches = pairs.batch(local, drop_remainder=True)[index::count]
    read = grain.ReadOptions(num_threads=int(cfg.num_threads), prefetch_buffer_size=int(cfg.prefetch))
    iterator = batches.to_iter_dataset(read).__iter__()
    if start_step:
        iterator.set_state({"next_index": int(start_step)})
    return iterator


def fixed_pairs(config=None, count: int = 8, *, split: str = "val", seed: int = 0) -> dict[str, np.ndarray]:
    """`count` deterministic, unaugmented, centre-cropped pairs (e.g. for sample grids during training), from
    eval_content / eval_style when set, else content / style, at `split` unless a spec pins its own."""
    cfg = resolve_config(config)
    cfg.content = cfg.eval_content or cfg.content
    cfg.style = cfg.eval_style or cfg.style
    iterator = make_pipeline(cfg, split=split, seed=seed, global_batch=count, process_index=0, process_count=1,
                             train=False)
    return next(iterator)
