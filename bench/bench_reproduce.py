"""Benchmark of `make reproduce`: where the time of one record and of the whole quick plan goes, and what the worker pool gains.

    python bench/bench_reproduce.py summary [RESULTS_DIR] [--wall SECONDS --jobs N]   # phase breakdown of a plan's records
    python bench/bench_reproduce.py pool [--points 16]                                # 1 process x 2 threads vs 2 x 1 thread

`summary` reads the records of a results folder (default results/; those written since records carry `timings`) and prints,
per experiment, the number of records and the sums of their wall time and of its phases: `prepare` (dataset and cached
features), `fit` (training: epochs, validation, checkpoints) and `evaluate` (the paper's measures). With the wall time of
reproduce's records phase (`--wall`, printed by `hier-repro reproduce`) it also prints the pool's efficiency: the records' own
time divided by (jobs x wall).

`pool` runs the same sample of quick-plan points (ProxyDR and Average-K, forced, into temporary folders) twice in one run,
interleaved: with `run_many(jobs=1)` in one process with 2 torch threads, and with `run_many(jobs=2)` (two worker processes,
one thread each), and prints both wall times and their ratio, with the load average.
"""
import argparse, json, os, subprocess, sys, tempfile, time
from collections import defaultdict
from pathlib import Path


def summary(results_dir: Path, wall: float | None, jobs: int):
    rows = defaultdict(lambda: defaultdict(float))
    for f in results_dir.rglob('*.json'):
        try: r = json.loads(f.read_text())
        except (OSError, ValueError): continue
        t = r.get('timings')
        if not isinstance(r, dict) or not t: continue
        a = rows[r.get('experiment', '?')]
        a['records'] += 1; a['wall'] += r.get('wall_s') or 0
        for k in ('prepare_s', 'fit_s', 'evaluate_s'): a[k] += t.get(k) or 0
    if not rows: sys.exit(f'no records with timings under {results_dir}: run `hier-repro reproduce` with this code first')
    tot = defaultdict(float)
    print('| experiment | records | record wall (s) | prepare (s) | fit (s) | evaluate (s) | other (s) |\n|---|---|---|---|---|---|---|')
    for name, a in sorted(rows.items(), key=lambda kv: -kv[1]['wall']):
        other = a['wall'] - a['prepare_s'] - a['fit_s'] - a['evaluate_s']
        print(f"| {name} | {a['records']:.0f} | {a['wall']:.0f} | {a['prepare_s']:.0f} | {a['fit_s']:.0f} | {a['evaluate_s']:.0f} | {other:.0f} |")
        for k, v in a.items(): tot[k] += v
    other = tot['wall'] - tot['prepare_s'] - tot['fit_s'] - tot['evaluate_s']
    print(f"| all | {tot['records']:.0f} | {tot['wall']:.0f} | {tot['prepare_s']:.0f} ({tot['prepare_s'] / tot['wall']:.0%}) | "
          f"{tot['fit_s']:.0f} ({tot['fit_s'] / tot['wall']:.0%}) | {tot['evaluate_s']:.0f} ({tot['evaluate_s'] / tot['wall']:.0%}) | {other:.0f} |")
    if wall: print(f"\nrecords phase {wall:.0f} s on {jobs} worker(s): the records' own time is {tot['wall'] / (jobs * wall):.0%} of jobs x wall "
                   f"(the rest: worker start-up, imports, waiting for the last group)")


def _points(n: int) -> list:
    import hier_repro.report  # noqa: F401
    from hier_repro.report import plan_points
    pts = plan_points('quick', allow_dirty=True)
    pick = [p for p in pts if p[0] == 'proxydr'][:n // 2] + [p for p in pts if p[0] == 'avgk'][:n - n // 2]
    return pick


def pool_child(jobs: int, n: int, out: str):
    import torch
    from hier_repro.experiments import run_many
    pts = [(e, dict(c, results_dir=out, run_dir=None)) for e, c in _points(n)]
    t = time.perf_counter(); run_many(pts, jobs=jobs, force=True, progress=False)
    print(json.dumps(dict(wall=time.perf_counter() - t, threads=torch.get_num_threads())))


def pool(n: int, rounds: int):
    print(f'load average at start: {os.getloadavg()}; {os.cpu_count()} CPUs; {n} points (ProxyDR and Average-K, quick plan)', flush=True)
    best = {}
    for r in range(rounds):
        for jobs, threads in ((1, 2), (2, 1)):
            with tempfile.TemporaryDirectory() as d:
                env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY='PASSIVE')
                o = subprocess.run([sys.executable, __file__, '_pool_child', str(jobs), str(n), d], env=env, capture_output=True, text=True)
                if o.returncode: raise RuntimeError(o.stderr[-2000:])
                w = json.loads(o.stdout.strip().splitlines()[-1])['wall']
            key = f'{jobs} process(es) x {threads} thread(s)'; best[key] = min(best.get(key, 1e9), w)
            print(f'  round {r + 1}: {key}: {w:.1f} s', flush=True)
    a, b = best['1 process(es) x 2 thread(s)'], best['2 process(es) x 1 thread(s)']
    print(f'load average at end: {os.getloadavg()}\nbest of {rounds}: 1 x 2 threads {a:.1f} s, 2 x 1 thread {b:.1f} s: the pool is {a / b:.2f}x faster')


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '_pool_child': pool_child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]); sys.exit()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    s = sub.add_parser('summary'); s.add_argument('results_dir', nargs='?', default='results'); s.add_argument('--wall', type=float); s.add_argument('--jobs', type=int, default=os.cpu_count())
    p = sub.add_parser('pool'); p.add_argument('--points', type=int, default=16); p.add_argument('--rounds', type=int, default=2)
    a = ap.parse_args()
    if a.cmd == 'summary': summary(Path(a.results_dir), a.wall, a.jobs)
    else: pool(a.points, a.rounds)
