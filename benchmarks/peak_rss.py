"""Run `python benchmarks/peak_rss.py MODULE ARGS...` like `python -m MODULE ARGS...` (or a SCRIPT.py like
`python SCRIPT.py ARGS...`), then write the process's peak resident memory (VmHWM, in KiB) to the file named by
$PEAK_RSS_OUT.

getrusage/wait4's ru_maxrss of a child is useless from a large parent: Linux carries the forked copy's
high-water mark across exec, so every child reports at least the parent's size. VmHWM belongs to the address
space that exec creates, so it measures the command alone.
"""
import atexit
import os
import runpy
import sys


def _report():
    target = os.environ.get("PEAK_RSS_OUT")
    if not target:
        return
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                with open(target, "w") as out:
                    out.write(line.split()[1])


atexit.register(_report)
if __name__ == "__main__":
    target = sys.argv[1]
    sys.argv = [target, *sys.argv[2:]]
    if target.endswith(".py"):
        runpy.run_path(target, run_name="__main__")
    else:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
