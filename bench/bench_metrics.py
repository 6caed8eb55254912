"""Benchmark of `hier_repro.metrics.evaluate_hierarchy`: wall time and peak memory.

    python bench/bench_metrics.py            # 10,000 and 100,000 test embeddings
    python bench/bench_metrics.py 10000      # one size

Inputs: n random 128-d test embeddings with labels of the 100 CIFAR-100 classes (the ProxyDR 4-level tree), their class means as
representatives and cosine scores to them, R = 250: every measure `evaluate_hierarchy` reports (hierarchy recovery, classification,
HS@R / AHS@250, P@1 / R-precision / MAP@R). Each size runs in a fresh subprocess, after a small warm-up call, so that its peak memory is its own:
- peak RSS: the process's resident-set high-water mark during the call (reset just before it through /proc/self/clear_refs where Linux allows,
  otherwise measured as getrusage's ru_maxrss) minus the resident set just before; this covers torch's CPU tensors;
- tracemalloc peak: Python and numpy allocations during the call (torch's allocator is invisible to tracemalloc).
Also printed: the CPU time of the call (all threads) and the load average, since wall time on a shared machine depends on what else runs.
"""
import json, os, resource, subprocess, sys, time

TARGETS = {10_000: (1.0, 1024), 100_000: (60.0, None)}   # n: (seconds, MB)


def _status_kb(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'): return int(line.split()[1])
    return None


def child(n: int, repeats: int):
    import tracemalloc
    import numpy as np, torch
    from hier_repro.hierarchy import load_hierarchy
    from hier_repro.metrics import evaluate_hierarchy, class_means
    h = load_hierarchy('cifar100')
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 100, (n,), generator=g)
    emb = torch.randn(n, 128, generator=g)
    reps = class_means(emb, y, 100)
    scores = torch.nn.functional.normalize(emb, dim=1) @ reps.T
    evaluate_hierarchy(h, reps=reps, emb=emb[:500], y=y[:500], scores=scores[:500], R=250)   # warm-up: imports, lazy inits
    times, cpu, out = [], [], None
    for r in range(repeats):
        rss0 = _status_kb('VmRSS')
        try:
            with open('/proc/self/clear_refs', 'w') as f: f.write('5')        # reset the RSS high-water mark
            hwm = lambda: _status_kb('VmHWM')
        except OSError:
            hwm = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        ru, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        out = evaluate_hierarchy(h, reps=reps, emb=emb, y=y, scores=scores, R=250)
        times.append(time.perf_counter() - t)
        ru2 = resource.getrusage(resource.RUSAGE_SELF)
        cpu.append(ru2.ru_utime - ru.ru_utime + ru2.ru_stime - ru.ru_stime)
        tm_peak = tracemalloc.get_traced_memory()[1]; tracemalloc.stop()
        peak = hwm() - rss0
    print(json.dumps(dict(n=n, seconds=times, cpu_seconds=cpu, load=os.getloadavg()[0], peak_rss_mb=peak / 1024, tracemalloc_peak_mb=tm_peak / 2 ** 20,
                          hs_at_250=out['hs_at_250'], ahs_at_250=out['ahs_at_250'], keys=len(out))))


def main(sizes):
    import torch
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads")
    for n in sizes:
        reps = 3 if n <= 20_000 else 1
        r = subprocess.run([sys.executable, __file__, '--child', str(n), str(reps)], capture_output=True, text=True)
        if r.returncode: print(r.stdout, r.stderr); raise SystemExit(f"benchmark for n={n} failed")
        res = json.loads(r.stdout.strip().splitlines()[-1])
        sec, mb = TARGETS.get(n, (None, None))
        best, med = min(res['seconds']), sorted(res['seconds'])[len(res['seconds']) // 2]
        print(f"evaluate_hierarchy n={n:>7,}: wall {best:.2f} s (best of {len(res['seconds'])}, median {med:.2f} s)"
              f"{'' if sec is None else f' [target < {sec:g} s]'}; peak RSS +{res['peak_rss_mb']:.0f} MB"
              f"{'' if mb is None else f' [target < {mb} MB]'}; tracemalloc peak {res['tracemalloc_peak_mb']:.1f} MB;"
              f" {res['keys']} measures, AHS@250 {res['ahs_at_250']:.4f}; CPU time {min(res['cpu_seconds']):.2f} s (all threads);"
              f" 1-min load average {res['load']:.1f} (other processes compete for the {os.cpu_count()} CPUs when it exceeds the threads used)")


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--child': child(int(sys.argv[2]), int(sys.argv[3]))
    else: main([int(a) for a in sys.argv[1:]] or [10_000, 100_000])
