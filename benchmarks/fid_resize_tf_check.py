"""Is arbstyle.evaluation.fid.resize_bilinear_tf1 the resize the 2015 FID graph ran? Compare it with TensorFlow's own
`tf.compat.v1.image.resize_bilinear` (align_corners=False, half_pixel_centers=False: the op in that graph).

TensorFlow is a benchmark-only tool here, in a throwaway venv of its own:

    python -m venv ../tf-venv && ../tf-venv/bin/pip install tensorflow-cpu pillow platformdirs
    ../tf-venv/bin/python benchmarks/fid_resize_tf_check.py

Inputs: the ../shared/data/val/content photos as float pixels 0..255 (decoded by PIL here, so the venv needs
no arbstyle dependencies beyond numpy). Also reports how far TF2's default resize (half-pixel centres) is
from the TF1 op, to show the choice matters. Writes benchmarks/results/fid_resize_tf_check.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from arbstyle.evaluation.fid import FID_SIZE, resize_bilinear_tf1  # noqa: E402  (numpy only)
from arbstyle.paths import shared_dir  # noqa: E402
from results_io import write_results  # noqa: E402


def main() -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    try:
        import tensorflow as tf
    except ImportError:
        sys.exit("this check needs TensorFlow: pip install tensorflow-cpu in a throwaway venv (see --help)")
    shared = shared_dir()
    if shared is None:
        sys.exit("this benchmark needs ../shared/data/val/content")
    paths = sorted((shared / "data" / "val" / "content").glob("*.jpg"))
    worst_tf1, worst_tf2, mean_tf2 = 0.0, 0.0, []
    for path in paths:
        pixels = np.asarray(Image.open(path).convert("RGB"), np.float32)
        ours = resize_bilinear_tf1(pixels, (FID_SIZE, FID_SIZE))
        tf1 = tf.compat.v1.image.resize_bilinear(pixels[None], (FID_SIZE, FID_SIZE), align_corners=False,
                                                 half_pixel_centers=False)[0].numpy()
        tf2 = tf.image.resize(pixels[None], (FID_SIZE, FID_SIZE), method="bilinear")[0].numpy()
        worst_tf1 = max(worst_tf1, float(np.abs(ours - tf1).max()))
        worst_tf2 = max(worst_tf2, float(np.abs(tf2 - tf1).max()))
        mean_tf2.append(float(np.abs(tf2 - tf1).mean()))
    result = {"command": "python benchmarks/fid_resize_tf_check.py", "images": len(paths),
              "tensorflow": tf.__version__,
              "ours_vs_tf1_resize_bilinear_max_abs_diff_0_255": worst_tf1,
              "tf2_default_vs_tf1_max_abs_diff_0_255": worst_tf2,
              "tf2_default_vs_tf1_mean_abs_diff_0_255": float(np.mean(mean_tf2))}
    write_results(ROOT / "benchmarks" / "results" / "fid_resize_tf_check", result, "\n".join([
        "# FID resize: arbstyle's TF1 ResizeBilinear vs TensorFlow's", "",
        f"Command: `{result['command']}` (in a venv with TensorFlow; {len(paths)} photos from "
        "../shared/data/val/content, "
        f"tensorflow {tf.__version__}, pixel units 0..255).", "",
        "| comparison | max abs diff | mean abs diff |", "|---|---|---|",
        f"| arbstyle.evaluation.fid.resize_bilinear_tf1 vs tf.compat.v1.image.resize_bilinear | {worst_tf1:.3g} | |",
        f"| TF2 tf.image.resize (half-pixel) vs the TF1 op | {worst_tf2:.3g} | {np.mean(mean_tf2):.3g} |", ""]))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
