"""Benchmark of the ProCRC closed form: the n x n dictionary-space solve against the d x d form (`procrc_feature_space`).

    python bench/bench_procrc.py                  # n = 8,000 training atoms, 2,000 queries, d = 1280 and 128, 10 classes

Both forms run on the same L2-normalised random float32 features (the d x d form computes in float64, as the library does),
interleaved, best of 2; printed: seconds, the ratio, the largest difference of the codes, whether the predicted classes agree,
and each form's error against the n x n solve in float64.
"""
import os, time
import torch, torch.nn.functional as F
from hier_repro.losses import procrc_coefficients

def case(n: int, q: int, d: int, C: int = 10, rounds: int = 2):
    g = torch.Generator().manual_seed(0)
    X = F.normalize(torch.randn(n, d, generator=g), dim=1); y = torch.randint(0, C, (n,), generator=g)
    z = F.normalize(torch.randn(q, d, generator=g), dim=1)
    best = {}
    for _ in range(rounds):
        for fs in (False, True):
            t = time.perf_counter(); a = procrc_coefficients(z, X, y, C, feature_space=fs); best[fs] = (min(best.get(fs, (1e9,))[0], time.perf_counter() - t), a)
    diff = float((best[True][1].double() - best[False][1].double()).abs().max())
    exact = procrc_coefficients(z.double(), X.double(), y, C, feature_space=False)   # the n x n solve in float64: the reference
    err = {fs: float((best[fs][1].double() - exact).abs().max()) for fs in (False, True)}
    pred = lambda a: torch.stack([(a[:, y == c] @ X[y == c] - a @ X).pow(2).sum(1) for c in range(C)], 1).argmin(1)   # ProCRC residuals
    agree = float((pred(best[True][1]) == pred(best[False][1])).float().mean())
    ref = pred(exact.float()); ok = {fs: float((pred(best[fs][1]) == ref).float().mean()) for fs in (False, True)}
    print(f'n {n:,} queries {q:,} d {d}: n x n {best[False][0]:.2f} s, d x d {best[True][0]:.2f} s ({best[False][0] / best[True][0]:.1f}x); '
          f'max |code difference| {diff:.1e}; predictions agree on {agree:.2%}; against the float64 n x n solve: n x n (float32) '
          f'error {err[False]:.1e}, predictions {ok[False]:.2%}; d x d error {err[True]:.1e}, predictions {ok[True]:.2%}', flush=True)

if __name__ == '__main__':
    print(f'load average {os.getloadavg()}, {torch.get_num_threads()} torch threads')
    for d in (1280, 128): case(8000, 2000, d)
