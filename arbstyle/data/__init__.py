"""Datasets (TFDS builders written as array_record, read without TensorFlow) and the grain input pipeline.

    from arbstyle import data
    data.prepare_shared()                        # build ../shared/data into TFDS datasets (first call only)
    it = data.make_pipeline(cfg, split="train", seed=0, global_batch=8)
    batch = next(it)                             # {'content': (B,256,256,3), 'style': (B,256,256,3), ...}

See docs/data.md for the whole API.
"""
from arbstyle.data.base import ImageBuilder, skipped_counts
from arbstyle.data.catalog import (BUILDERS, SHARED, default_data_dir, get_builder, load, parse_spec, prepare_shared,
                                   summary)
from arbstyle.data.coco import CocoContent
from arbstyle.data.dtd import Dtd
from arbstyle.data.image_folder import ImageFolder, ImageFolderConfig, config_for_path, folder_config
from arbstyle.data.imagenet import ImagenetContent
from arbstyle.data.painter_by_numbers import PainterByNumbers
from arbstyle.data.pipeline import (PairTransform, default_config, fixed_pairs, global_pairs, make_pipeline, prepare,
                                    resolve_config)

__all__ = [
    "BUILDERS", "SHARED", "CocoContent", "Dtd", "ImageBuilder", "ImageFolder", "ImageFolderConfig", "ImagenetContent",
    "PainterByNumbers", "PairTransform", "config_for_path", "default_config", "default_data_dir", "fixed_pairs",
    "folder_config", "get_builder", "global_pairs", "load", "make_pipeline", "parse_spec", "prepare", "prepare_shared",
    "resolve_config", "skipped_counts", "summary",
]
