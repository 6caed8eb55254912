"""The GPU path, measured (issue 16): one run on a bare GPU machine, within a time budget.

1. Training throughput (images/s) and peak GPU memory of the library's `fit` against a minimal plain PyTorch
   loop on the same model, loss, batch size and augmentation, with the real data pipeline (CUB images in host
   memory) and with GPU-resident synthetic images (so real/synthetic, the data pipeline's efficiency, is
   known), plus a compute-only ceiling; for ImageNet-pretrained EfficientNet-Lite0 (fine-tuned) and randomly
   initialised ResNet-50, at 224 px.
2. End-to-end fine-tuning of EfficientNet-Lite0 on the CUB subset through the library's experiments (`run`,
   the `paper` profile, records written by the normal record mechanism) for each paper's headline claim:
   ProxyDR vs NormFace (standard), two-head vs CE thresholding (K = 2), DML-CRC vs softmax vs M = I; seed
   by seed, so that a global deadline cuts whole seeds last and says what it skipped.

Everything it writes goes to --out (the device tool returns at most 8 files, 2 folders deep):
throughput.json, throughput.md, timings.json, nvidia-smi.txt, summary.md and records.tar.gz (the records as
results/<experiment>/<regime>/*.json, to unpack at the repository root), rewritten after every step so that
a run stopped by its time limit still returns what it finished. `--smoke` runs all of it on the CPU at
tiny sizes (bf16 autocast and channels_last included) in well under a minute or two.

    python bench/gpu_check.py --cub gpu_carry/cub.tar.xz --out $OUT          # on the GPU machine
    python bench/gpu_check.py --smoke --cub FIXTURE --out /tmp/gpu_smoke     # anywhere
"""
from __future__ import annotations
import argparse, gc, hashlib, io, json, math, os, shutil, statistics, subprocess, sys, tarfile, threading, time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))   # this working tree's library, whatever else is installed
CARRY = ROOT / 'gpu_carry'
OUTPUT_DIRS = ('results/', 'figures/', 'README.md')   # rewritten by runs and the report; not code (as hier_repro.core.OUTPUT_DIRS)

# the grid: each paper's headline comparison, one entry per configuration (run seed-major)
CLAIM_POINTS = [
    ('proxydr', dict(model='proxydr', option='standard')), ('proxydr', dict(model='normface', option='standard')),
    ('avgk', dict(method='two_head', K=2)), ('avgk', dict(method='ce', K=2)),
    ('dmlcrc', dict(method='dmlcrc')), ('dmlcrc', dict(method='softmax')), ('dmlcrc', dict(method='collab_identity')),
]
BENCH_MODELS = [('efficientnet_lite0', True), ('resnet50', False)]   # (backbone, ImageNet-pretrained)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--cub', default=os.environ.get('HR_CUB'), help='CUB folder (official layout) or a .tar.xz / .tar.gz / .tar of one '
                   '(default: $HR_CUB, else gpu_carry/cub.tar.xz)')
    p.add_argument('--out', default=os.environ.get('OUT'), help='output folder (default: $OUT)')
    p.add_argument('--work', default=None, help='scratch folder: extracted data, caches, checkpoints, records; kept, so a rerun resumes (default: /tmp/hr_gpu_check)')
    p.add_argument('--smoke', action='store_true', help='tiny sizes on the CPU: checks that everything runs')
    p.add_argument('--budget-s', type=float, default=None, help='seconds for everything, counted from $HR_T0 when set (default 480; smoke 150)')
    p.add_argument('--device', default=None, help="'auto', 'cuda' or 'cpu' (default: auto; smoke: cpu)")
    p.add_argument('--train-flag', type=int, default=None, help="train_test_split.txt value of training images (default: the archive's CARRY.json, else 0)")
    p.add_argument('--seeds', default=None, help="grid seeds (default 1-3; smoke 1)")
    p.add_argument('--epochs', default='auto', help="grid epochs, or 'auto': as many as the measured throughput lets the grid fit its time")
    p.add_argument('--batches', default=None, help='batch sizes of the throughput table (default 32,128; smoke 4)')
    p.add_argument('--image-size', type=int, default=None, help="side of the images (default: the dataset's own, 224; smoke 32)")
    p.add_argument('--skip-throughput', action='store_true'); p.add_argument('--skip-grid', action='store_true')
    p.add_argument('--cli-check', default=None, action=argparse.BooleanOptionalAction,
                   help='also run one configuration through the hier-repro command line (default: in smoke only)')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (smoke default 1)')
    a = p.parse_args(argv)
    if not a.out: p.error('give --out (or set $OUT)')
    a.cub = a.cub or str(CARRY / 'cub.tar.xz')
    s = a.smoke
    a.budget_s = a.budget_s or (150.0 if s else 480.0)
    a.device = a.device or ('cpu' if s else 'auto')
    a.seeds = a.seeds or ('1' if s else '1-3')
    a.batches = [int(b) for b in str(a.batches or ('4' if s else '32,128')).split(',')]
    a.image_size = a.image_size or (32 if s else None)   # None: the grid's records keep the profile's image size (224)
    a.cli_check = s if a.cli_check is None else a.cli_check
    a.threads = a.threads or (1 if s else None)
    return a


# ---------------------------------------------------------------- clock, files, log
class Clock:
    "Seconds since the run began ($HR_T0 when the shell wrapper set it, so the install counts) and the time left."
    def __init__(self, budget_s: float):
        self.t0 = float(os.environ.get('HR_T0') or time.time()); self.budget = budget_s; self.phases = {}
    def elapsed(self) -> float: return time.time() - self.t0
    def left(self) -> float: return self.budget - self.elapsed()
    def phase(self, name: str, start: float): self.phases[name] = round(time.time() - start, 2)


def log(*a): print(f"[gpu_check {time.strftime('%H:%M:%S')}]", *a, flush=True)


def write_atomic(path: Path, data: str | bytes):
    tmp = path.with_name(f'.{path.name}.tmp')
    tmp.write_bytes(data.encode() if isinstance(data, str) else data); tmp.replace(path)


def write_json(path: Path, obj): write_atomic(path, json.dumps(obj, indent=1, default=str))


# ---------------------------------------------------------------- nvidia-smi
class SmiSampler:
    "nvidia-smi: full output at named moments, and a 2-second sample of load, memory, power and clocks in a thread."
    QUERY = 'utilization.gpu,memory.used,memory.total,power.draw,clocks.sm,temperature.gpu'
    def __init__(self, path: Path):
        self.path, self.rows, self.phase, self._stop = path, [], 'start', threading.Event()
        self.exe = shutil.which('nvidia-smi')
        write_atomic(path, '' if self.exe else 'nvidia-smi not found: no NVIDIA GPU on this machine (a CPU run)\n')
        self.thread = threading.Thread(target=self._loop, daemon=True) if self.exe else None
    def _q(self, *args, timeout=15) -> str:
        try: return subprocess.run([self.exe, *args], capture_output=True, text=True, timeout=timeout).stdout
        except Exception as e: return f'nvidia-smi failed: {type(e).__name__}: {e}\n'
    def snapshot(self, label: str):
        if not self.exe: return
        with open(self.path, 'a') as f: f.write(f'==== {label} ({time.strftime("%Y-%m-%d %H:%M:%S")})\n{self._q()}\n')
    def _loop(self):
        while not self._stop.wait(2.0):
            line = self._q(f'--query-gpu={self.QUERY}', '--format=csv,noheader,nounits').strip().splitlines()
            if line:
                try: self.rows.append([self.phase, round(time.time(), 1)] + [float(v) for v in line[0].split(',')])
                except ValueError: pass
    def start(self):
        if self.thread: self.thread.start()
    def stop(self) -> dict:
        "Stop sampling; write the samples; per phase: samples, mean and max GPU load (%) and memory used (MiB), max power (W)."
        if not self.thread: return {}
        self._stop.set(); self.thread.join(timeout=20)
        with open(self.path, 'a') as f:
            f.write(f'==== samples every 2 s: phase,unix_time,{self.QUERY}\n')
            f.writelines(','.join(map(str, r)) + '\n' for r in self.rows)
        out = {}
        for ph in dict.fromkeys(r[0] for r in self.rows):
            rs = [r for r in self.rows if r[0] == ph]
            out[ph] = dict(samples=len(rs), util_mean=round(statistics.mean(r[2] for r in rs), 1), util_max=max(r[2] for r in rs),
                           mem_used_max_mib=max(r[3] for r in rs), power_max_w=max(r[5] for r in rs))
        return out


# ---------------------------------------------------------------- provenance without .git on the machine
def git_blob_sha(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b'blob %d\0' % len(data) + data).hexdigest()


def provenance(source_json: Path) -> dict:
    "The commit the tree is: from git when the machine has the repository's .git, else the carried manifest, verified file by file."
    from hier_repro.core import git_state
    g = git_state()
    if g['sha'] != 'unknown': return dict(how='git', sha=g['sha'], dirty=g['dirty'])
    if not source_json.is_file(): return dict(how='none', sha='unknown', dirty=None, note=f'no .git and no {source_json}')
    src = json.loads(source_json.read_text())
    bad = [p for p, sha in src['files'].items() if not p.startswith(OUTPUT_DIRS)
           and (not (ROOT / p).is_file() or git_blob_sha(ROOT / p) != sha)]
    return dict(how=f'manifest {source_json.name} (git ls-tree of the commit; every code file hashed here)', sha=src['sha'],
                dirty=bool(bad), differing=bad[:20], n_differing=len(bad), n_files=len(src['files']))


def stamp_record(path: Path, prov: dict):
    "A record written without .git says 'unknown': put the verified commit in, and say how it was known."
    rec = json.loads(path.read_text())
    info = rec.get('info') or {}
    if info.get('git_sha') != 'unknown' or prov['how'] in ('git', 'none'): return
    info.update(git_sha=prov['sha'], git_dirty=prov['dirty'], git_provenance=prov['how'])
    rec['info'] = info
    write_atomic(path, json.dumps(rec, indent=1))


# ---------------------------------------------------------------- data
def locate_cub(spec: str, work: Path) -> tuple[Path, dict]:
    "(the CUB folder, its CARRY.json or {}): a folder as given, or an archive extracted into work/cub."
    p = Path(spec)
    if not p.exists(): raise SystemExit(f"gpu_check: no CUB data at {p}: give --cub (a folder in the official layout or a .tar.xz of one); "
                                        "bench/make_carry.sh makes gpu_carry/cub.tar.xz")
    if p.is_file():
        dest = work / 'cub'
        if dest.exists(): shutil.rmtree(dest)
        with tarfile.open(p) as tf: tf.extractall(dest, filter='data')
        p = dest
    found = [d.parent for d in sorted(p.rglob('images.txt'))]
    if not found: raise SystemExit(f"gpu_check: {spec} holds no images.txt: not a CUB-200-2011 copy")
    root = found[0]
    note = json.loads((root / 'CARRY.json').read_text()) if (root / 'CARRY.json').is_file() else {}
    return root, note


# ---------------------------------------------------------------- throughput
def _sync(dev):
    import torch
    if dev.type == 'cuda': torch.cuda.synchronize()


def _fresh_peak(dev):
    import torch
    gc.collect()
    if dev.type == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()


def _peak_gib(dev):
    import torch
    return round(torch.cuda.max_memory_allocated() / 2**30, 3) if dev.type == 'cuda' else None


def measure_fit(model, loss, split, batch, epochs, augment, dev, amp) -> dict:
    "The library's fit over `split` (no validation): images/s of the epochs after the first (the warm-up)."
    from hier_repro.training import fit
    _fresh_peak(dev); t = time.perf_counter()
    res = fit(model, loss, SimpleNamespace(train=split, val=None), epochs=epochs, lr=1e-4, batch_size=batch, augment=augment,
              device=dev, amp=amp, log='none', seed=1, run_dir=None)
    ips = [h['images_per_s'] for h in res.history]
    return dict(images_per_s=statistics.median(ips[1:] or ips), epoch_images_per_s=[round(v, 1) for v in ips],
                n_images=len(split) * epochs, peak_gib=_peak_gib(dev), seconds=round(time.perf_counter() - t, 2))


def measure_plain(model, loss, batches, steps, warmup, dev, amp) -> dict:
    "A minimal PyTorch loop (Adam, bf16 autocast on the GPU, channels_last; no per-step host sync) over `batches`, an endless iterator of (x, y, idx)."
    import torch
    from hier_repro.training import trainable_parameters
    _fresh_peak(dev)
    model.to(dev).to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(trainable_parameters(model), lr=1e-4)
    def step():
        x, y, idx = next(batches)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            out = model(x); l = loss(out, y, idx)
        opt.zero_grad(set_to_none=True); l.backward(); opt.step()
        if hasattr(model, 'after_step'):
            with torch.no_grad(): model.after_step(out, y)
        return len(y)
    t = time.perf_counter()
    for _ in range(warmup): step()
    _sync(dev); t1 = time.perf_counter(); n = 0
    for _ in range(steps): n += step()
    _sync(dev); dt = time.perf_counter() - t1
    return dict(images_per_s=n / dt, step_ms=round(1000 * dt / steps, 3), n_images=n, peak_gib=_peak_gib(dev),
                seconds=round(time.perf_counter() - t, 2))


def plain_real_batches(split, batch, dev, augment, workers):
    "Real data, plain PyTorch: DataLoader over the host-memory uint8 images (pinned), copied, scaled, augmented and normalised on the device."
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    mean, std = split.mean.to(dev)[:, None, None], split.std.to(dev)[:, None, None]
    dl = DataLoader(TensorDataset(split.x, split.y, torch.arange(len(split))), batch_size=batch, shuffle=True, drop_last=True,
                    num_workers=workers, pin_memory=dev.type == 'cuda', persistent_workers=workers > 0)
    while True:
        for x, y, idx in dl:
            x = x.to(dev, non_blocking=True).float().div_(255)
            if augment is not None: x = augment(x)
            yield ((x - mean) / std).contiguous(memory_format=torch.channels_last), y.to(dev, non_blocking=True), idx.to(dev, non_blocking=True)


def plain_synthetic_batches(split, batch, dev, augment):
    "GPU-resident synthetic uint8 images, with the same on-device scaling, augmentation and normalisation."
    import torch
    mean, std = split.mean.to(dev)[:, None, None], split.std.to(dev)[:, None, None]
    while True:
        for i in range(0, len(split) - batch + 1, batch):
            x = split.x[i:i + batch].float().div_(255)
            if augment is not None: x = augment(x)
            yield ((x - mean) / std).contiguous(memory_format=torch.channels_last), split.y[i:i + batch], torch.arange(i, i + batch, device=dev)


def compute_only_batches(split, batch, dev):
    "One fixed, already normalised batch on the device: the model's step alone (the ceiling)."
    import torch
    g = torch.Generator(device='cpu').manual_seed(0)
    x = torch.randn(batch, *split.x.shape[1:], generator=g).to(dev).contiguous(memory_format=torch.channels_last)
    y, idx = split.y[:batch].to(dev), torch.arange(batch, device=dev)
    while True: yield x, y, idx


def synthetic_split(real, n, dev):
    "n random uint8 images of the real split's shape and classes, on the device (the library's Split)."
    import torch
    from hier_repro.datasets import Split
    g = torch.Generator(device='cpu').manual_seed(0)
    x = torch.randint(0, 256, (n, *real.x.shape[1:]), dtype=torch.uint8, generator=g)
    y = real.y[torch.randint(0, len(real), (n,), generator=g)]
    return Split(x.to(dev), y.to(dev), real.mean, real.std, real.size)


def throughput(a, cub_root, train_flag, dev, clock, out, table, budget_end) -> dict | None:
    "Fill `table` (rows of the throughput table); returns the CUB dataset it prepared (the grid reuses its decoded cache)."
    import torch
    from hier_repro.experiments import resolve_config, get_experiment
    from hier_repro.datasets import make_augment
    s = a.smoke
    n_img = 8 if s else 2048                     # images per fit epoch and per timed plain run
    fit_epochs, warmup = (2, 1) if s else (3, 10)
    workers = 0 if dev.type != 'cuda' else min(8, max(1, (os.cpu_count() or 2) // 2))
    amp = True                                   # bf16 autocast: on the GPU as fit's 'auto' does, and on the CPU to exercise it
    spec = get_experiment('proxydr')
    data = None
    for backbone, pretrained in BENCH_MODELS:
        cfg = resolve_config(spec, profile='paper', dataset='cub', root=str(cub_root), train_flag=train_flag, backbone=backbone,
                             pretrained=pretrained, frozen=False, image_size=a.image_size or 224, model='proxydr', option='standard',
                             device=str(dev))
        if data is None:
            t = time.time(); data = spec.hook('prepare')(cfg); clock.phase('throughput_data_prepare', t)
            log(f"CUB: {data.description.get('sizes')}, {data.description.get('missing_images')} listed images not carried; "
                f"{data.description.get('storage')}")
        real = data.train.subset(torch.arange(min(n_img, len(data.train))))
        synth = synthetic_split(real, len(real), dev)
        augment = make_augment(cfg['augment'], data.image_shape)
        for b in a.batches:
            why = 'throughput time budget spent' if time.time() > budget_end else f'batch above the {len(real)} images measured' if b > len(real) else None
            if why: table.append(dict(model=backbone, batch=b, skipped=why)); log(f"skip {backbone} batch {b}: {why}"); continue
            torch.manual_seed(1)
            model, loss = spec.build(cfg, data)
            row = lambda loop, kind, r: table.append(dict(model=backbone, pretrained=pretrained, image_size=data.image_shape[-1], batch=b,
                                                          loop=loop, data=kind, amp='bf16' if amp else None, **r))
            steps = max(2 if s else 10, math.ceil(n_img / b))
            for loop, kind, fn in (
                    ('fit', 'real', lambda: measure_fit(model, loss, real, b, fit_epochs, augment, dev, amp)),
                    ('fit', 'synthetic', lambda: measure_fit(model, loss, synth, b, fit_epochs, augment, dev, amp)),
                    ('plain', 'real', lambda: measure_plain(model, loss, plain_real_batches(real, b, dev, augment, workers), steps, warmup, dev, amp)),
                    ('plain', 'synthetic', lambda: measure_plain(model, loss, plain_synthetic_batches(synth, b, dev, augment), steps, warmup, dev, amp)),
                    ('plain', 'compute-only', lambda: measure_plain(model, loss, compute_only_batches(synth, b, dev), steps, warmup, dev, amp))):
                try: r = fn()
                except torch.cuda.OutOfMemoryError as e: r = dict(error=f'out of memory: {str(e).splitlines()[0][:160]}')
                row(loop, kind, r)
                log(f"{backbone:>18} b{b:<4} {loop:>5} {kind:<12} " + (f"{r['images_per_s']:9.1f} img/s  peak {r['peak_gib']} GiB" if 'images_per_s' in r else r['error']))
                write_throughput(out, table, dev)
            del model, loss
    return data


def efficiency(table: list[dict]) -> list[dict]:
    "Per model and batch: real/synthetic (data pipeline) for each loop, fit/plain (the loop) for each data kind."
    out = []
    key = lambda r: (r['model'], r['batch'])
    for k in dict.fromkeys(key(r) for r in table if 'images_per_s' in r):
        ips = {(r['loop'], r['data']): r['images_per_s'] for r in table if key(r) == k and 'images_per_s' in r}
        ratio = lambda x, y: round(ips[x] / ips[y], 3) if x in ips and y in ips else None
        out.append(dict(model=k[0], batch=k[1], fit_real_over_synthetic=ratio(('fit', 'real'), ('fit', 'synthetic')),
                        plain_real_over_synthetic=ratio(('plain', 'real'), ('plain', 'synthetic')),
                        fit_over_plain_real=ratio(('fit', 'real'), ('plain', 'real')),
                        fit_over_plain_synthetic=ratio(('fit', 'synthetic'), ('plain', 'synthetic')),
                        synthetic_over_compute_only=ratio(('plain', 'synthetic'), ('plain', 'compute-only'))))
    return out


def throughput_markdown(table, dev_name) -> str:
    lines = [f'Training throughput on {dev_name} (images/s; peak = torch.cuda.max_memory_allocated)', '',
             '| model | batch | loop | data | images/s | peak GiB |', '|---|---:|---|---|---:|---:|']
    for r in table:
        if 'images_per_s' in r: lines.append(f"| {r['model']}{' (ImageNet)' if r.get('pretrained') else ' (random)'} | {r['batch']} | {r['loop']} "
                                             f"| {r['data']} | {r['images_per_s']:.1f} | {r['peak_gib'] if r['peak_gib'] is not None else '-'} |")
        else: lines.append(f"| {r['model']} | {r['batch']} | {r.get('loop', '')} | {r.get('data', '')} | {r.get('error') or r.get('skipped')} | |")
    eff = efficiency(table)
    if eff:
        lines += ['', '| model | batch | fit real/synthetic | plain real/synthetic | fit/plain real | fit/plain synthetic | synthetic/compute-only (plain) |',
                  '|---|---:|---:|---:|---:|---:|---:|']
        lines += [f"| {e['model']} | {e['batch']} | {e['fit_real_over_synthetic']} | {e['plain_real_over_synthetic']} | {e['fit_over_plain_real']} "
                  f"| {e['fit_over_plain_synthetic']} | {e['synthetic_over_compute_only']} |" for e in eff]
    lines += ['', 'fit: hier_repro.training.fit (its per-epoch images/s, epochs after the first); plain: Adam, autocast, channels_last, '
              'no per-step host sync. real: CUB images in host memory (fit: Split.batches; plain: DataLoader, pinned); '
              'synthetic: random uint8 images already on the device; both scale, augment (affine) and normalise on the device. '
              'compute-only: one fixed normalised batch.']
    return '\n'.join(lines) + '\n'


def write_throughput(out: Path, table, dev):
    import torch
    name = torch.cuda.get_device_name() if dev.type == 'cuda' else f'CPU ({os.cpu_count()} cores, smoke sizes: not a measurement)'
    write_json(out / 'throughput.json', dict(device=name, rows=table, efficiency=efficiency(table)))
    write_atomic(out / 'throughput.md', throughput_markdown(table, name))


# ---------------------------------------------------------------- the claim grid
def grid_points(seeds) -> list[tuple[int, str, dict]]:
    "(seed, experiment, config) seed-major, so that a deadline leaves whole seeds of every comparison."
    from hier_repro.core import parse_seeds
    return [(s, e, c) for s in parse_seeds(seeds) for e, c in CLAIM_POINTS]


def auto_epochs(n_train: int, n_val: int, ips: float | None, seconds: float, n_points: int, overhead_s: float = 8.0,
                lo: int = 2, hi: int = 15) -> tuple[int, str]:
    "Epochs for every grid point so that n_points runs fit in `seconds` at `ips` training images/s (validation at 3x that)."
    if not ips: return 5, 'no throughput measured: 5'
    per_epoch = n_train / ips + n_val / (3 * ips) + 0.5
    e = int(max(lo, min(hi, (seconds / n_points - overhead_s) // per_epoch)))
    return e, f'{seconds:.0f} s for {n_points} runs at {ips:.0f} img/s ({per_epoch:.1f} s/epoch + {overhead_s:.0f} s a run): {e}'


def choose_epochs(epochs, smoke: bool, batch: int, table: list[dict], data, seconds: float, n_points: int) -> tuple[int, str]:
    "The grid's epochs: as given, 1 in smoke mode, else `auto_epochs` from fit's real-data throughput of EfficientNet-Lite0 at the grid's batch."
    if epochs != 'auto': return int(epochs), 'given'
    if smoke: return 1, 'smoke: 1'
    ips = next((r['images_per_s'] for r in table if r.get('model') == 'efficientnet_lite0' and r.get('batch') == batch
                and r.get('loop') == 'fit' and r.get('data') == 'real' and 'images_per_s' in r), None)
    n_train, n_val = (len(data.train), len(data.val)) if data is not None else (2699, 300)
    return auto_epochs(n_train, n_val, ips, seconds, n_points)


def must_skip(left_s: float, estimate_s: float, reserve_s: float) -> bool:
    "Whether a grid point estimated to take `estimate_s` would end after the deadline (keeping `reserve_s` to pack outputs)."
    return left_s - reserve_s < estimate_s


def pack_records(results: Path, out: Path) -> int:
    "results/<experiment>/<regime>/*.json into out/records.tar.gz (paths from the repository root); returns how many."
    files = sorted(results.rglob('*.json')) if results.exists() else []
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:gz') as tf:
        for f in files: tf.add(f, arcname=f'results/{f.relative_to(results).as_posix()}')
    write_atomic(out / 'records.tar.gz', buf.getvalue())
    return len(files)


def run_grid(a, cub_root, train_flag, dev, clock, out, work, prov, timings, throughput_table, data) -> list[dict]:
    from hier_repro.experiments import run, get_experiment, record_path, resolve_config
    results = work / 'results'
    points = grid_points(a.seeds)
    common = dict(profile='paper', dataset='cub', root=str(cub_root), train_flag=train_flag, backbone='efficientnet_lite0',
                  pretrained=True, frozen=False, image_size=a.image_size, results_dir=str(results), device=str(dev))
    if a.smoke: common.update(batch_size=8, n_train=200, n_val=200, n_test=200)   # a tiny fixture keeps all it has; the whole subset is cut
    reserve = 10.0 if a.smoke else 25.0
    epochs, why = choose_epochs(a.epochs, a.smoke, resolve_config('proxydr', **common)['batch_size'], throughput_table, data,
                                clock.left() - reserve - 20, len(points))
    common['epochs'] = epochs
    timings['grid'] = dict(epochs=epochs, epochs_rule=why, config=common | {'root': str(cub_root)}, points=[], skipped=[])
    log(f"grid: {len(points)} runs, epochs {epochs} ({why}); {clock.left():.0f} s left")
    took: dict[str, list[float]] = {}
    first_guess = (4 if a.smoke else 10) + epochs * (2 if a.smoke else 4)
    for seed, exp, cfg in points:
        name = f"{exp} {' '.join(f'{k}={v}' for k, v in cfg.items())} seed {seed}"
        est = 1.25 * max(took.get(exp) or [max(sum(took.values(), [])) if took else first_guess])
        if must_skip(clock.left(), est, reserve):
            timings['grid']['skipped'].append(dict(point=name, reason=f'deadline: {clock.left():.0f} s left, about {est:.0f} s needed'))
            log(f"SKIP {name}: deadline ({clock.left():.0f} s left, about {est:.0f} s needed)"); continue
        t = time.time()
        try:
            rec = run(exp, {**common, **cfg, 'seed': seed})
            path = record_path(exp, resolve_config(exp, {**common, **cfg, 'seed': seed}))
            stamp_record(path, prov)
            dt = time.time() - t; took.setdefault(exp, []).append(dt)
            line = get_experiment(exp).summary(rec)
            timings['grid']['points'].append(dict(point=name, record=str(path.relative_to(results)), seconds=round(dt, 1),
                                                  record_wall_s=round(rec['wall_s'], 1), images_per_s=rec.get('images_per_s'), summary=line))
            log(f"done {name}: {line} ({dt:.1f} s, fit {rec.get('images_per_s') or 0:.0f} img/s)")
        except Exception as e:   # one failing point must not lose the others: recorded, and the run goes on
            dt = time.time() - t; took.setdefault(exp, []).append(dt)
            timings['grid']['points'].append(dict(point=name, error=f'{type(e).__name__}: {str(e)[:300]}', seconds=round(dt, 1)))
            log(f"FAILED {name}: {type(e).__name__}: {e}")
        timings['grid']['records_packed'] = pack_records(results, out)
        write_json(out / 'timings.json', timings)
    return timings['grid']['points']


def cli_check(a, cub_root, train_flag, dev, work) -> dict:
    "One configuration through the command line (`hier-repro run proxydr --profile paper ...`), as a user would type it."
    args = ['run', 'proxydr', '--profile', 'paper', '--dataset', 'cub', '--root', str(cub_root), '--train-flag', str(train_flag),
            '--backbone', 'efficientnet_lite0', '--pretrained', 'true', '--frozen', 'false', '--epochs', '1',
            '--device', str(dev), '--seed', '7', '--results-dir', str(work / 'cli_results')]
    args += (['--image-size', str(a.image_size)] if a.image_size else []) + (['--batch-size', '8', '--n-train', '200', '--n-val', '200', '--n-test', '200'] if a.smoke else [])
    cmd = [sys.executable, '-c', 'import sys; from hier_repro.cli import main; sys.exit(main())', *args]
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')])})
    last = (p.stdout.strip().splitlines() or [''])[-1]
    res = dict(command='hier-repro ' + ' '.join(args), returncode=p.returncode, seconds=round(time.time() - t, 1), output=last[:500],
               stderr_tail=p.stderr[-800:] if p.returncode else '')
    log(f"CLI check: rc {p.returncode} in {res['seconds']} s: {last[:200]}")
    return res


# ---------------------------------------------------------------- main
def summary_markdown(timings, throughput_md) -> str:
    g = timings.get('grid') or {}
    lines = [f"# GPU check ({'smoke, CPU' if timings['smoke'] else timings['device_name']})", '',
             f"- commit: {timings['provenance'].get('sha')} (dirty: {timings['provenance'].get('dirty')}; {timings['provenance'].get('how')})",
             f"- torch {timings['torch']}, CUDA {timings['cuda']}, Python {timings['python']}",
             f"- total {timings.get('total_s')} s of a {timings['budget_s']:.0f} s budget; phases (s): {timings['phases']}",
             f"- data: {timings.get('cub')}", '', throughput_md or '(throughput not measured)', '']
    if g:
        lines += [f"## Claim grid: EfficientNet-Lite0 fine-tuned, paper profile, {g['epochs']} epochs ({g['epochs_rule']})", '',
                  '| run | seconds | fit img/s | result |', '|---|---:|---:|---|']
        for p in g['points']:
            lines.append(f"| {p['point']} | {p['seconds']} | {p.get('images_per_s') and round(p['images_per_s'])} | {p.get('summary') or p.get('error')} |")
        lines += [f"- skipped: {s['point']} ({s['reason']})" for s in g['skipped']] or ['- nothing skipped']
    if timings.get('cli_check'): lines += ['', f"CLI check: `{timings['cli_check']['command']}` -> rc {timings['cli_check']['returncode']}"]
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    a = parse_args(argv)
    clock = Clock(a.budget_s)
    out = Path(a.out).resolve(); out.mkdir(parents=True, exist_ok=True)
    # a fixed scratch folder: the records name the data's path, and a rerun on the same machine reuses finished records and checkpoints
    work = Path(a.work).resolve() if a.work else Path(os.environ.get('TMPDIR', '/tmp')) / 'hr_gpu_check'
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault('HIER_REPRO_CACHE', str(work / 'cache')); os.environ.setdefault('HIER_REPRO_RUNS', str(work / 'runs'))
    import torch
    if a.threads: torch.set_num_threads(a.threads)
    from hier_repro.training import resolve_device
    import hier_repro.proxydr, hier_repro.avgk, hier_repro.dmlcrc   # noqa: F401 (registers the three papers' experiments)
    dev = resolve_device(a.device)
    smi = SmiSampler(out / 'nvidia-smi.txt'); smi.snapshot('start'); smi.start()
    timings = dict(smoke=a.smoke, budget_s=a.budget_s, started_unix=clock.t0, argv=sys.argv[1:], device=str(dev),
                   device_name=torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu', torch=torch.__version__,
                   cuda=torch.version.cuda, python=sys.version.split()[0], phases=clock.phases, setup_s=round(clock.elapsed(), 1))
    timings['provenance'] = prov = provenance(CARRY / 'SOURCE.json')
    log(f"device {timings['device_name']}; torch {torch.__version__}; commit {prov.get('sha')} ({prov['how']}, dirty {prov.get('dirty')}); "
        f"{clock.left():.0f} s left")
    t = time.time(); cub_root, note = locate_cub(a.cub, work); clock.phase('cub_extract', t)
    train_flag = a.train_flag if a.train_flag is not None else int(note.get('train_flag', 0))
    timings['cub'] = dict(root=str(cub_root), train_flag=train_flag, carry=note)
    write_json(out / 'timings.json', timings)
    table, data = [], None
    if not a.skip_throughput:
        smi.phase = 'throughput'; t = time.time()
        try: data = throughput(a, cub_root, train_flag, dev, clock, out, table, budget_end=clock.t0 + (0.9 if a.smoke else 0.4) * a.budget_s)
        except Exception as e:   # the grid still runs: the table keeps what was measured, the error is said
            import traceback
            timings['throughput_error'] = traceback.format_exc()[-3000:]; log(f"THROUGHPUT FAILED: {type(e).__name__}: {e}")
        clock.phase('throughput', t); write_json(out / 'timings.json', timings)
    if not a.skip_grid:
        smi.phase = 'grid'; t = time.time()
        run_grid(a, cub_root, train_flag, dev, clock, out, work, prov, timings, table, data)
        clock.phase('grid', t)
    if a.cli_check and clock.left() > 30:
        smi.phase = 'cli'; t = time.time(); timings['cli_check'] = cli_check(a, cub_root, train_flag, dev, work); clock.phase('cli_check', t)
    smi.snapshot('end'); timings['nvidia_smi'] = smi.stop()
    timings['records_packed'] = pack_records(work / 'results', out)
    timings['total_s'] = round(clock.elapsed(), 1)
    write_json(out / 'timings.json', timings)
    if table: write_throughput(out, table, dev)
    md = (out / 'throughput.md').read_text() if (out / 'throughput.md').exists() else ''
    write_atomic(out / 'summary.md', summary_markdown(timings, md))
    failed = [p for p in (timings.get('grid') or {}).get('points', []) if 'error' in p]
    cli_bad = timings.get('cli_check', {}).get('returncode', 0) != 0
    log(f"finished in {timings['total_s']} s: {timings['records_packed']} records, {len(failed)} failed runs"
        + (', CLI check FAILED' if cli_bad else '') + (', throughput FAILED' if 'throughput_error' in timings else '') + f"; outputs in {out}")
    return 1 if failed or cli_bad or 'throughput_error' in timings else 0


if __name__ == '__main__':
    sys.exit(main())
