"""Datasets (TFDS builders written as array_record, read without TensorFlow) and the grain input pipeline.

    from arbstyle import data
    data.prepare_shared()                        # build ../shared/data into TFDS datasets (first call only)
    it = data.make_pipeline(cfg, split="train", seed=0, global_batch=8)
    batch = next(it)                             # {'content': (B,256,256,3), 'style': (B,256,256,3), ...}

See docs/data.md for the whole API.

The names below are loaded on first use: importing the package (as `arbstyle data --help` does to reach
`arbstyle.data.command`) costs nothing, while TFDS, grain and the builders load with the first name used.
"""
import importlib

# name -> the submodule defining it
_EXPORTS = {
    "ImageBuilder": "base", "skipped_counts": "base",
    "BUILDERS": "catalog", "SHARED": "catalog", "default_data_dir": "catalog", "get_builder": "catalog",
    "load": "catalog", "parse_spec": "catalog", "prepare_shared": "catalog", "summary": "catalog",
    "CocoContent": "coco",
    "Dtd": "dtd",
    "ImageFolder": "image_folder", "ImageFolderConfig": "image_folder", "config_for_path": "image_folder",
    "folder_config": "image_folder",
    "ImagenetContent": "imagenet",
    "PainterByNumbers": "painter_by_numbers",
    "PairTransform": "pipeline", "default_config": "pipeline", "fixed_pairs": "pipeline", "global_pairs": "pipeline",
    "make_pipeline": "pipeline", "prepare": "pipeline", "resolve_config": "pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
