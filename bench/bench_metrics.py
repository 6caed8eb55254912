"""Benchmark of `hier_repro.metrics.evaluate_hierarchy`'s retrieval measures against a port of the paper's loops and pytorch-metric-learning.

    python bench/bench_metrics.py                 # 10,000, 30,000 and 100,000 test embeddings
    python bench/bench_metrics.py 10000 30000     # chosen sizes

Inputs: n random 128-d test embeddings with labels of the 100 CIFAR-100 classes (the ProxyDR 4-level tree), R = 250. Three ways to get the measures:
- project: `evaluate_hierarchy(h, emb=, y=, R=250)`: HS@R, AHS@250, P@1, R-precision, MAP@R in one chunked neighbour pass;
- paper: the port of the official ProxyDR loops in tests/test_metrics.py (`bf_hsr`, the official top_k_HSR with its n x n matrices, and `bf_group_retrieval`,
  the official get_acc_measures loop over every query): the same measures;
- pml: pytorch-metric-learning's `AccuracyCalculator` (cosine `CustomKNN`, k = 'max_bin_count'): P@1, R-precision, MAP@R only.
Each measurement runs in a fresh subprocess (after a small warm-up call) so that its peak memory is its own, and the methods of one size alternate,
round after round, so that their ratios are measured under the same load: wall time, CPU time (all threads), peak RSS above the resident set just before the call
(reset through /proc/self/clear_refs where Linux allows), the 1-minute load average, and the largest difference between shared measures.
The paper port is skipped above 10,000 (its n x n float64 matrices: 4 x 7.2 GB at 30,000) and pml at 100,000 (its n x n float32 similarities: 40 GB).
Also printed: float32 GEMM speed of numpy and torch on one chunk of the neighbour pass, the reason the pass multiplies in torch.
"""
import json, os, resource, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = {100_000: (60.0, 40.0)}   # n: (wall s under the usual load, CPU s)
LIMITS = {'paper': (10_000, "n x n float64 matrices (4 x 8 n^2 bytes: 29 GB at 30,000) do not fit in this machine's memory"),
          'pml': (30_000, "AccuracyCalculator's n x n float32 similarities (40 GB at 100,000) do not fit in this machine's memory")}


def _status_kb(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'): return int(line.split()[1])
    return None


def _data(n):
    import torch
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 128, generator=g), torch.randint(0, 100, (n,), generator=g)


def _method(name):
    "A function (emb, y) -> dict of measures, for each method."
    import numpy as np
    from hier_repro.hierarchy import load_hierarchy
    h = load_hierarchy('cifar100'); D = h.distance_matrix()
    if name == 'project':
        from hier_repro.metrics import evaluate_hierarchy
        return lambda e, y: evaluate_hierarchy(h, emb=e, y=y, R=250)
    if name == 'paper':
        sys.path.insert(0, os.path.join(HERE, '..', 'tests'))
        from test_metrics import bf_hsr, bf_group_retrieval
        def paper(e, y):
            e, y = e.double().numpy(), y.numpy()
            hs = bf_hsr(e, y, D, 250)
            p1, rp, mp = bf_group_retrieval(e, y)
            return {'hs_at_250': hs[-1], 'ahs_at_250': float(np.trapezoid(hs, dx=1 / 249)), 'p_at_1': p1, 'r_precision': rp, 'map_at_r': mp}
        return paper
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN
    from pytorch_metric_learning.distances import CosineSimilarity
    calc = AccuracyCalculator(include=('precision_at_1', 'r_precision', 'mean_average_precision_at_r'), k='max_bin_count', knn_func=CustomKNN(CosineSimilarity()))
    def pml(e, y):
        r = calc.get_accuracy(e, y)
        return {'p_at_1': r['precision_at_1'], 'r_precision': r['r_precision'], 'map_at_r': r['mean_average_precision_at_r']}
    return pml


def child(name, n):
    f, (e, y) = _method(name), _data(n)
    f(e[:600], y[:600])                                                    # warm-up: imports, lazy inits
    rss0 = _status_kb('VmRSS')
    try:
        with open('/proc/self/clear_refs', 'w') as fh: fh.write('5')      # reset the RSS high-water mark
        hwm = lambda: _status_kb('VmHWM')
    except OSError:
        hwm = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ru, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    out = f(e, y)
    wall = time.perf_counter() - t
    ru2 = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps(dict(wall=wall, cpu=ru2.ru_utime - ru.ru_utime + ru2.ru_stime - ru.ru_stime, peak_mb=(hwm() - rss0) / 1024,
                          load=os.getloadavg()[0], out={k: float(v) for k, v in out.items()})))


def gemm_line():
    "GFLOP per CPU-second of numpy's and torch's float32 GEMM on one chunk of the 100,000-item neighbour pass, interleaved."
    import numpy as np, torch
    e, _ = _data(100_000); e = torch.nn.functional.normalize(e, dim=1); ET = e.T.contiguous(); rows = 335
    En, ETn, buf = e.numpy(), ET.numpy(), torch.empty(rows, 100_000)
    fs = {'numpy': lambda a: np.matmul(En[a:a + rows], ETn, out=buf.numpy()), 'torch': lambda a: torch.mm(e[a:a + rows], ET, out=buf)}
    cpu = {k: 0.0 for k in fs}
    for r in range(6):
        for k, f in fs.items():
            t = time.process_time(); f(r * rows); cpu[k] += time.process_time() - t
    fl = 6 * 2 * rows * 100_000 * 128 / 1e9
    print(f"float32 GEMM, {rows} x 128 x 100,000 chunks: numpy {fl / cpu['numpy']:.0f}, torch {fl / cpu['torch']:.0f} GFLOP per CPU-s "
          f"(torch/numpy speed {cpu['numpy'] / cpu['torch']:.2f}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')})")


def run(name, n):
    r = subprocess.run([sys.executable, __file__, '--child', name, str(n)], capture_output=True, text=True)
    if r.returncode: print(r.stdout, r.stderr); raise SystemExit(f"benchmark of {name} at n={n} failed")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(sizes):
    import torch
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; load average at start {os.getloadavg()[0]:.1f}")
    gemm_line()
    for n in sizes:
        methods = [m for m in ('project', 'paper', 'pml') if n <= LIMITS.get(m, (n, ''))[0]]
        for m in ('paper', 'pml'):
            if m not in methods: print(f"n={n:,}: {m} skipped: {LIMITS[m][1]}")
        rounds = 2 if n <= 10_000 else 1
        res = {m: [] for m in methods}
        for _ in range(rounds):                                        # interleaved: project, paper, pml, project, ...
            for m in methods: res[m].append(run(m, n))
        best = {m: min(rs, key=lambda r: r['wall']) for m, rs in res.items()}
        loads = [r['load'] for rs in res.values() for r in rs]
        for m, r in best.items():
            print(f"n={n:>7,} {m:>7}: wall {r['wall']:7.2f} s, CPU {r['cpu']:7.2f} s, peak RSS +{r['peak_mb']:7.0f} MB (best of {len(res[m])} by wall)")
        p = best['project']
        for m in methods[1:]:
            r = best[m]; shared = [k for k in r['out'] if k in p['out']]
            diff = max(abs(r['out'][k] - p['out'][k]) for k in shared)
            print(f"n={n:>7,} {m} / project: wall {r['wall'] / p['wall']:.1f}x, CPU {r['cpu'] / p['cpu']:.1f}x, peak memory {r['peak_mb']:.0f} vs {p['peak_mb']:.0f} MB; "
                  f"largest difference over {', '.join(shared)}: {diff:.1e}")
        if n in TARGETS:
            w, c = TARGETS[n]
            print(f"n={n:>7,} project targets: wall {p['wall']:.1f} s [< {w:g} s under the usual load], CPU {p['cpu']:.1f} s [< {c:g} s]")
        print(f"n={n:>7,} 1-minute load average during these runs: {min(loads):.1f}-{max(loads):.1f} ({os.cpu_count()} CPUs; above 2 other processes compete)")


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--child': child(sys.argv[2], int(sys.argv[3]))
    else: main([int(a) for a in sys.argv[1:]] or [10_000, 30_000, 100_000])
