"""Recompute existing records from the configs they store (forced), in one pool of worker processes.

    python tools/rerun_records.py results/proxydr/cub__efficientnet_lite0-frozen results/avgk/cub__efficientnet_lite0-frozen ...

Each record is rerun with exactly its stored `config` (so it is rewritten at its own path, by this checkout's code);
`--jobs` worker processes (default: one per core), every training shared by several records done once.
"""
import argparse, json, sys
from pathlib import Path

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('paths', nargs='+', help='record files or folders of records')
    ap.add_argument('--jobs', type=int, default=None)
    ap.add_argument('--allow-dirty', action='store_true')
    a = ap.parse_args()
    import hier_repro.report  # noqa: F401  (registers every experiment)
    from hier_repro.experiments import run_many, require_clean
    require_clean(a.allow_dirty, 'rerun_records')
    files = sorted(f for p in map(Path, a.paths) for f in ([p] if p.is_file() else p.rglob('*.json')))
    points = []
    for f in files:
        r = json.loads(f.read_text())
        points.append((r['experiment'], dict(r['config'], results_dir=str(f.parents[2]), allow_dirty=a.allow_dirty or None)))
    if not points: sys.exit('no records found under ' + ' '.join(a.paths))
    print(f'rerunning {len(points)} records', flush=True)
    recs = run_many(points, jobs=a.jobs, force=True)
    print(f'{len(recs)} records rewritten')
