"""Where the time of one `arbstyle stylize` run goes: start-up, imports, model build, embedding, stylizing, writing.

    python benchmarks/cli_breakdown.py                                  # this checkout, 3 warm runs
    python benchmarks/cli_breakdown.py --tree old=/path/to/old/checkout --tree new=.   # A/B, interleaved

Each run is a fresh interpreter that calls `arbstyle.cli.main` on one photo (long side 1024, `--work-size 384`),
as the `arbstyle` command does, with timers wrapped around the stages (nothing else is changed):

* parser: `import arbstyle.cli` and the command's argument module (what `--help` costs);
* jax + flax + networks: importing `arbstyle.inference.stylize` (with stored programs, Flax is not imported);
* model: `arbstyle.weights.registry.load_model` (weights read and verified, network built and filled); with
  stored programs, a warm run builds no network and this stage is zero;
* embed: `Stylizer.embed` of the style (compilation, or loading it from the persistent cache, plus the run);
* stylize: `Stylizer.render` (the same for the transformer, plus the 8-bit upscale);
* programs: the part of embed and stylize spent in `ProgramStore.program` (a stored program read, its weights
  read and verified, its executable taken from XLA's cache; on a cold run, the network built and exported);
* write: `arbstyle.images.save_image`;
* process: the whole process from outside (interpreter start-up included).

Every tree gets its own fresh compilation cache and program folder: its first run is "cold" (compiles and fills
both), later runs are "warm". Trees alternate run by run, so that they see the same machine load. A tree is a
PYTHONPATH.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from arbstyle.machine import cpu_name  # noqa: E402
from results_io import write_results  # noqa: E402

STAGES = ("parser", "jax + flax + networks", "model", "embed", "stylize", "programs (part of embed + stylize)",
          "write")

_PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import arbstyle.cli as cli
import arbstyle.inference.stylize_cli  # noqa: F401  (the stylize command's argument definitions)
stages = {"parser": time.perf_counter() - t0}
t = time.perf_counter()
if "stylize" in getattr(cli, "NNX_COMMANDS", ()):  # trees from before stored programs imported flax here
    cli.import_flax_without_ipython()
import arbstyle.inference.stylize as stylize
stages["jax + flax + networks"] = time.perf_counter() - t
from arbstyle import images
from arbstyle.weights import registry

def timed(owner, name, stage):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            stages[stage] = stages.get(stage, 0.0) + time.perf_counter() - start
    setattr(owner, name, wrapper)

timed(registry, "load_model", "model")
try:
    from arbstyle.inference import programs
    timed(programs.ProgramStore, "program", "programs (part of embed + stylize)")
except ImportError:  # a tree from before stored programs
    pass
timed(stylize.Stylizer, "embed", "embed")
timed(stylize.Stylizer, "render", "stylize")
timed(images, "save_image", "write")
rc = cli.main(sys.argv[1:])
stages["in process"] = time.perf_counter() - t0
print(json.dumps({"rc": rc, "stages": stages, "modules": len(sys.modules)}), flush=True)
if "stylize" in getattr(cli, "QUICK_EXIT_COMMANDS", ()):  # as the console script ends (arbstyle.cli.run)
    import os
    os._exit(rc)
"""


def _inputs(folder: Path) -> tuple[Path, Path]:
    from arbstyle.images import load_image, resize_long, save_image, to_float32
    from arbstyle.paths import shared_dir

    shared = shared_dir()
    photo = style = None
    if shared is not None and (shared / "data" / "val" / "content").is_dir():
        photo = max(sorted((shared / "data" / "val" / "content").iterdir())[:20], key=lambda p: p.stat().st_size)
        style = sorted((shared / "data" / "val" / "styles").iterdir())[0]
        photo_arr, style_arr = load_image(photo), load_image(style)
    else:
        import skimage.data

        photo_arr, style_arr = to_float32(skimage.data.coffee()), to_float32(skimage.data.brick())
    content, painting = folder / "photo.jpg", folder / "style.png"
    save_image(resize_long(photo_arr, 1024) if max(photo_arr.shape[:2]) != 1024 else photo_arr, content, quality=92)
    save_image(style_arr, painting)
    return content, painting


def run_once(pythonpath: str, cache: Path, content: Path, style: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=pythonpath, ARBSTYLE_XLA_CACHE=str(cache),
               ARBSTYLE_PROGRAMS=str(cache.with_name(cache.name + "-programs")))
    argv = ["stylize", str(content), "-s", str(style), "-o", str(out), "--work-size", "384", "--overwrite"]
    start = time.perf_counter()
    # run from the scratch folder: `python -c` puts the working directory first on sys.path, before PYTHONPATH
    proc = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, env=env,
                          cwd=out.parent, timeout=900)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{pythonpath}: run failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["stages"]["process"] = wall
    return result


def markdown(result: dict) -> str:
    names = list(result["trees"])
    quiet = max(result["load"]) < 1.5  # this benchmark's own runs hold about 1 of the 2 cores
    load = (f"1-minute load average {result['load'][0]} at the start, {result['load'][1]} at the end")
    lines = ["# One-image `arbstyle stylize` run, stage by stage", "",
             f"`{result['command']}` on {result.get('cpu') or 'an unnamed CPU'}. Photo {result['photo']}, "
             "`--work-size 384`. " + (f"Quiet machine ({load}). " if quiet else
                                      f"**Measured under load** ({load}): seconds are inflated. ") +
             "Trees alternate run by run, so they see the same load. Where a tree imports JAX while building the "
             "parser, that time is in its parser row.", "",
             "| stage | " + " | ".join(f"{n} cold | {n} warm (median)" for n in names) + " |",
             "|---|" + "---|---|" * len(names)]
    for stage in (*STAGES, "in process", "process"):
        cells = []
        for name in names:
            runs = result["trees"][name]
            cells.append(f"{runs[0]['stages'].get(stage, 0.0):.2f}")
            cells.append(f"{statistics.median(r['stages'].get(stage, 0.0) for r in runs[1:]):.2f}")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("| modules imported | " + " | ".join(
        f"{result['trees'][n][0]['modules']} | {result['trees'][n][-1]['modules']}" for n in names) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", metavar="NAME=PYTHONPATH",
                        help="a checkout to run (repeat to compare); default: this one")
    parser.add_argument("--runs", type=int, default=3, help="warm runs per tree after the cold one")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cli_breakdown"))
    args = parser.parse_args()
    trees = dict(spec.split("=", 1) for spec in args.tree) if args.tree else {"this": str(ROOT)}
    # the runs start in a scratch folder: relative entries must not resolve there
    trees = {name: os.pathsep.join(str(Path(p).resolve()) for p in path.split(os.pathsep))
             for name, path in trees.items()}
    load = [round(os.getloadavg()[0], 1)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        content, style = _inputs(tmp)
        runs = {name: [] for name in trees}
        for i in range(args.runs + 1):
            for name, pythonpath in trees.items():
                result = run_once(pythonpath, tmp / f"xla-cache-{name}", content, style, tmp / f"out-{name}.png")
                runs[name].append(result)
                print(name, "cold" if i == 0 else "warm", json.dumps(result["stages"]))
        with Image.open(content) as opened:
            photo = "x".join(map(str, opened.size))
    load.append(round(os.getloadavg()[0], 1))
    # the command names each tree, not where it lay on the measuring machine
    shown = [f"--tree {name}=<{name} checkout>" for name in trees] if args.tree else []
    result = {"command": " ".join(["python benchmarks/cli_breakdown.py", *shown, f"--runs {args.runs}"]),
              "photo": photo, "cpu": cpu_name(),
              "trees": runs, "load": load}
    write_results(Path(args.out), result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
