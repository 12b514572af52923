r"""Side-by-side: training speed of both runs from their stats.jsonl (any Python, standard library only).

    python3 tools/side_by_side/timing.py --ours /work/scratch/sbs/ours/00000-demo-cond-b8 \
        --reference /work/scratch/sbs/reference_runs/00000-...

Both loops time each tick without its maintenance (snapshots, checkpoints, sample grids). Printed per run:
  total   sum of the ticks' seconds / kimg trained (includes the first tick: tracing/compilation on our side,
          one warm-up batch on the reference's, whose first tick is a single batch);
  steady  median seconds per kimg over the ticks after the first.
The numbers are wall clock: on a shared machine they move with the load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def _value(v):
    return v["mean"] if isinstance(v, dict) else v  # the reference stores {num, mean, std}


def run_timing(run: Path) -> dict:
    path = run / "stats.jsonl"
    if not path.is_file():
        raise SystemExit(f"error: {path} does not exist; pass a finished run folder.")
    ticks = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    kimg = [float(_value(t["Progress/kimg"])) for t in ticks]
    sec = [float(_value(t["Timing/sec_per_tick"])) for t in ticks]
    spk = [float(_value(t["Timing/sec_per_kimg"])) for t in ticks]
    return {"run": str(run), "ticks": len(ticks), "kimg": kimg[-1], "seconds": round(sum(sec), 1),
            "total_sec_per_kimg": round(sum(sec) / kimg[-1], 2),
            "steady_sec_per_kimg": round(statistics.median(spk[1:]), 2) if len(spk) > 1 else None,
            "sec_per_kimg_by_tick": [round(x, 1) for x in spk]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ours", action="append", default=[], help="our run folder (repeatable)")
    ap.add_argument("--reference", action="append", default=[], help="reference run folder (repeatable)")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    rows = [("ours", Path(p)) for p in args.ours] + [("reference", Path(p)) for p in args.reference]
    if not rows:
        raise SystemExit("error: pass --ours and/or --reference run folders.")
    out = []
    for side, run in rows:
        t = run_timing(run)
        t["side"] = side
        out.append(t)
        print(f"{side:9s} {t['kimg']:6.2f} kimg in {t['seconds']:7.1f} s: total {t['total_sec_per_kimg']:7.2f} s/kimg, "
              f"steady {t['steady_sec_per_kimg']} s/kimg  ({run.name}; per tick {t['sec_per_kimg_by_tick']})")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
