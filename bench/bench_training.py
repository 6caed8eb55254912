"""Benchmark of training speed: the library's `fit` against a minimal plain PyTorch loop, threads and processes, channels-last.

    python bench/bench_training.py            # head on cached features, then the SmallCNN from scratch
    python bench/bench_training.py --quick    # fewer steps and rounds

Every case trains the same model (the ProxyDR experiment's own `build`: embedding neck + ProxyDR head), with the same loss,
batch size (64) and data, on the embedded default (Fashion-MNIST, 10,000 images):
- head: the neck and head on the cached 1280-d EfficientNet-Lite0 features (the quick plan's regime);
- smallcnn: a SmallCNN of width 16 trained from scratch on the 32 px images (the end-to-end regime).
Each case runs in a fresh subprocess (so its thread count and OpenMP settings are its own; OMP_WAIT_POLICY=PASSIVE) for a fixed
number of optimiser steps after a warm-up; the cases are interleaved over rounds and the best round is kept, so the ratios
come from one run on whatever load the machine has (printed). "2 x 1 thread" runs two such processes side by side and
counts the images of both (a grid's seeds run that way under `run_many`).
"""
import argparse, json, os, subprocess, sys, time

CASES = {   # name: (model, runner, threads, processes, channels_last)
    'head fit 2 threads':                 ('head', 'fit', 2, 1, False),
    'head plain 2 threads':               ('head', 'plain', 2, 1, False),
    'head fit 1 thread':                  ('head', 'fit', 1, 1, False),
    'head fit 2 x 1 thread':              ('head', 'fit', 1, 2, False),
    'smallcnn fit 2 threads NCHW':        ('smallcnn', 'fit', 2, 1, False),   # fit before channels-last on the CPU
    'smallcnn plain 2 threads NCHW':      ('smallcnn', 'plain', 2, 1, False),
    'smallcnn fit 2 threads':             ('smallcnn', 'fit', 2, 1, True),    # fit now (channels-last for images)
    'smallcnn plain 2 threads':           ('smallcnn', 'plain', 2, 1, True),
    'smallcnn fit 1 thread':              ('smallcnn', 'fit', 1, 1, True),
    'smallcnn fit 2 x 1 thread':          ('smallcnn', 'fit', 1, 2, True),    # a grid's seeds under run_many
}
BASELINE = {'head': 'head fit 2 threads', 'smallcnn': 'smallcnn fit 2 threads NCHW'}


def child(model: str, runner: str, steps: int, channels_last: bool, seed: int):
    "Train `steps` optimiser steps (after 5 warm-up steps) and print images/s as JSON."
    import torch
    import hier_repro.report  # noqa: F401  (registers the experiments)
    from hier_repro.experiments import get_experiment, resolve_config
    from hier_repro.training import fit, _make_optimizer, trainable_parameters
    e = get_experiment('proxydr')
    kw = dict(backbone='smallcnn', width=16, frozen=False, pretrained=False, image_size=32) if model == 'smallcnn' else {}
    cfg = resolve_config(e, dict(kw, seed=seed, epochs=1, batch_size=64, n_train=64 * (steps + 5), n_val=64, allow_dirty=True))
    data = e.hook('prepare')(cfg)
    torch.manual_seed(seed)
    net, loss = e.build(cfg, data)
    if runner == 'fit':
        res = fit(net, loss, data, epochs=1, lr=1e-3, batch_size=64, seed=seed, log='none', device='cpu', channels_last=channels_last)
        print(json.dumps(dict(images_per_s=res.images_per_s)))   # fit times its training loop only (not validation)
        return
    if channels_last: net = net.to(memory_format=torch.channels_last)
    opt = _make_optimizer(trainable_parameters(net), 'adam', 1e-3, 0.0)
    n, t = 0, None
    for i, (x, y, idx) in enumerate(data.train.batches(64, shuffle=True, generator=torch.Generator().manual_seed(seed))):
        if i == 5: t = time.perf_counter()
        if channels_last and x.ndim == 4: x = x.contiguous(memory_format=torch.channels_last)
        l = loss(net(x), y, idx)
        opt.zero_grad(set_to_none=True); l.backward(); opt.step()
        if i >= 5: n += len(y)
    print(json.dumps(dict(images_per_s=n / (time.perf_counter() - t))))


def curve(channels_last: bool, epochs: int):
    "Validation accuracy per epoch of the SmallCNN trained by `fit` on the full embedded default (2 threads)."
    import torch
    import hier_repro.report  # noqa: F401
    from hier_repro.experiments import get_experiment, resolve_config
    from hier_repro.training import fit
    e = get_experiment('proxydr')
    cfg = resolve_config(e, dict(backbone='smallcnn', width=16, frozen=False, pretrained=False, image_size=32, epochs=epochs, batch_size=64, allow_dirty=True))
    data = e.hook('prepare')(cfg); torch.manual_seed(1); net, loss = e.build(cfg, data)
    res = fit(net, loss, data, epochs=epochs, lr=1e-3, batch_size=64, seed=1, log='none', device='cpu', channels_last=channels_last)
    print(json.dumps([round(h['val_acc'], 4) for h in res.history]))


def measure(name: str, steps: int) -> float:
    model, runner, threads, procs, cl = CASES[name]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OMP_WAIT_POLICY='PASSIVE')
    cmd = [sys.executable, __file__, '--child', model, runner, str(steps), str(int(cl))]
    ps = [subprocess.Popen(cmd + [str(s + 1)], env=env, stdout=subprocess.PIPE, text=True) for s in range(procs)]
    outs = [p.communicate()[0] for p in ps]
    if any(p.returncode for p in ps): raise RuntimeError(f'{name} failed')
    return sum(json.loads(o.strip().splitlines()[-1])['images_per_s'] for o in outs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true'); ap.add_argument('--child', nargs=5); ap.add_argument('--curve', nargs=2)
    args = ap.parse_args()
    if args.curve: return curve(bool(int(args.curve[0])), int(args.curve[1]))
    if args.child:
        m, r, steps, cl, seed = args.child
        return child(m, r, int(steps), bool(int(cl)), int(seed))
    rounds, steps = (1, {'head': 150, 'smallcnn': 20}) if args.quick else (3, {'head': 400, 'smallcnn': 60})
    print(f'load average at start: {os.getloadavg()}; {os.cpu_count()} CPUs; {rounds} round(s)', flush=True)
    best = {}
    for r in range(rounds):
        for name, (model, *_ ) in CASES.items():
            v = measure(name, steps[model]); best[name] = max(best.get(name, 0), v)
            print(f'  round {r + 1}: {name:32s} {v:8.0f} images/s', flush=True)
    print(f'load average at end: {os.getloadavg()}\n')
    print(f"| case | images/s (best of {rounds}) | vs {'`fit`, 2 threads'} |\n|---|---|---|")
    for name, (model, *_ ) in CASES.items():
        print(f'| {name} | {best[name]:.0f} | {best[name] / best[BASELINE[model]]:.2f}x |')
    epochs = 1 if args.quick else 3
    env = dict(os.environ, OMP_NUM_THREADS='2', OMP_WAIT_POLICY='PASSIVE')
    accs = {cl: subprocess.run([sys.executable, __file__, '--curve', str(int(cl)), str(epochs)], env=env, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            for cl in (False, True)}
    print(f"\nthe same training, NCHW vs channels-last: validation accuracy per epoch {accs[False]} vs {accs[True]} (SmallCNN, full embedded default, seed 1)")


if __name__ == '__main__':
    main()
