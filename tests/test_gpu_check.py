"The GPU check (bench/gpu_check.sh, issue 16) in its CPU --smoke mode, so that it cannot rot: its outputs, its records, its deadline, its provenance and its data packing."
import importlib.util, json, math, os, subprocess, sys, tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, SHARED
from test_datasets import cub_like_fixture
from hier_repro.hierarchy import load_hierarchy

OUTPUTS = {'gpu_check.log', 'nvidia-smi.txt', 'throughput.json', 'throughput.md', 'timings.json', 'summary.md', 'records.tar.gz'}
REGIME = 'cub__efficientnet_lite0-finetuned'


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / 'bench' / f'{name}.py')
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    return m


gpu, pack = load('gpu_check'), load('pack_cub')


def synthetic_cub(root: Path) -> Path:
    "A CUB copy in the official layout (test_datasets' fixture writer) with noise images: 5 official classes, 10 training and 5 test images each."
    names = load_hierarchy('cub').classes
    ids = [1, 4, 7, 10, 12]
    rows = [(i, c, 0 if k < 10 else 1) for i, (c, k) in enumerate(((c, k) for c in ids for k in range(15)), 1)]   # flag 0 = training, as the shared subset
    cub_like_fixture(root, {c: names[c - 1] for c in ids}, rows, missing={i for i, _, _ in rows})
    rng = np.random.default_rng(0)
    for i, c, _ in rows:
        (root / 'images' / f'{c:04d}').mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(root / 'images' / f'{c:04d}' / f'{i}.jpg')
    return root


@pytest.fixture(scope='module')
def cub_source(tmp_path_factory):
    "The real CUB subset when ../shared/data has it, else the synthetic copy."
    real = SHARED / 'cub' / 'CUB_200_2011_subset100'
    return real if real.is_dir() else synthetic_cub(tmp_path_factory.mktemp('cub') / 'CUB_200_2011')


@pytest.fixture(scope='module')
def cub_archive(cub_source, tmp_path_factory):
    "5 classes (10 training, 5 test images each) packed as the GPU machine gets them."
    out = tmp_path_factory.mktemp('carry') / 'cub.tar.xz'
    assert pack.main([str(cub_source), str(out), '--classes', '5', '--train-per-class', '10', '--test-per-class', '5']) == 0
    return out


@pytest.fixture(scope='module')
def smoke(cub_archive, tmp_path_factory):
    "One run of the shell command in --smoke mode (no install: this environment has everything)."
    out = tmp_path_factory.mktemp('out')
    env = {k: v for k, v in os.environ.items() if k not in ('HR_T0', 'HIER_REPRO_CACHE', 'HIER_REPRO_RUNS', 'CUDA_VISIBLE_DEVICES')}
    env |= dict(OUT=str(out), PYTHON=sys.executable, OMP_WAIT_POLICY='PASSIVE', PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES='')
    p = subprocess.run(['bash', str(ROOT / 'bench' / 'gpu_check.sh'), '--no-install', '--smoke', '--cub', str(cub_archive),
                        '--work', str(tmp_path_factory.mktemp('work'))], env=env, capture_output=True, text=True, timeout=600)
    return p, out


def test_smoke_runs_and_writes_every_output(smoke):
    p, out = smoke
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert {f.name for f in out.iterdir()} == OUTPUTS          # at most 8 files, none in folders: what the device tool returns
    assert 'finished in' in (out / 'gpu_check.log').read_text()
    assert 'no NVIDIA GPU' in (out / 'nvidia-smi.txt').read_text()


def test_throughput_table_is_complete_and_sane(smoke):
    _, out = smoke
    t = json.loads((out / 'throughput.json').read_text())
    got = {(r['model'], r['loop'], r['data']) for r in t['rows']}
    assert got == {(m, l, d) for m, _ in gpu.BENCH_MODELS for l, d in
                   (('fit', 'real'), ('fit', 'synthetic'), ('plain', 'real'), ('plain', 'synthetic'), ('plain', 'compute-only'))}
    for r in t['rows']:
        assert math.isfinite(r['images_per_s']) and 0 < r['images_per_s'] < 1e5 and r['n_images'] > 0 and r['batch'] == 4
        assert r['image_size'] == 32 and r['amp'] == 'bf16' and r['peak_gib'] is None   # no CUDA: no GPU memory figure
    assert len(t['efficiency']) == 2 and all(0 < v < 100 for e in t['efficiency'] for k, v in e.items() if k not in ('model', 'batch'))
    md = (out / 'throughput.md').read_text()
    assert md.count('| efficientnet_lite0 (ImageNet) | 4 |') == 5 and md.count('| resnet50 (random) | 4 |') == 5 and 'fit real/synthetic' in md


def test_records_are_the_fine_tuned_paper_profile_runs(smoke, cub_source):
    _, out = smoke
    partial = cub_source == SHARED / 'cub' / 'CUB_200_2011_subset100'   # the real subset travels in part; the synthetic copy whole
    with tarfile.open(out / 'records.tar.gz') as tf:
        recs = {m.name: json.load(tf.extractfile(m)) for m in tf.getmembers() if m.isfile()}
    assert len(recs) == len(gpu.CLAIM_POINTS) and all(n.startswith('results/') and f'/{REGIME}/' in n for n in recs)
    assert sorted(n.split('/')[1] for n in recs) == sorted(e for e, _ in gpu.CLAIM_POINTS)
    for name, r in recs.items():
        c = r['config']
        assert (c['profile'], c['backbone'], c['pretrained'], c['frozen'], c['epochs'], c['image_size'], c['seed']) == \
               ('paper', 'efficientnet_lite0', True, False, 1, 32, 1), name
        assert r['regime'] == REGIME and r['info']['device'] == 'cpu' and r['images_per_s'] > 0 and len(r['fit']['history']) == 1
        d = r['dataset']['description']
        assert d['image_shape'] == [3, 32, 32] and (d.get('missing_images', 0) > 0) == partial and r['dataset']['n_classes'] == 5   # at 32 px
        m = r['metrics']
        score = {'proxydr': lambda: m['proxy']['top1'], 'avgk': lambda: m[r['primary_head']]['avgk_acc'], 'dmlcrc': lambda: m['top1']}[r['experiment']]()
        assert 0 <= score <= 1, name


def test_timings_summary_and_command_line(smoke):
    _, out = smoke
    t = json.loads((out / 'timings.json').read_text())
    assert t['smoke'] and t['grid']['epochs'] == 1 and t['grid']['skipped'] == [] and t['records_packed'] == len(gpu.CLAIM_POINTS)
    assert all('error' not in p and p['seconds'] > 0 for p in t['grid']['points'])
    assert {'cub_extract', 'throughput', 'grid'} <= set(t['phases']) and 0 < t['total_s'] < t['budget_s']
    assert t['provenance']['how'] in ('git', 'none') and t['cub']['train_flag'] == 0
    assert t['cli_check']['returncode'] == 0 and '--profile paper' in t['cli_check']['command'] and '"reused": false' in t['cli_check']['output']
    s = (out / 'summary.md').read_text()
    assert s.count(' seed 1 |') == len(gpu.CLAIM_POINTS) and 'nothing skipped' in s


def test_deadline_skips_remaining_points_and_says_so(cub_archive, tmp_path, monkeypatch, one_thread):
    for k in ('HIER_REPRO_CACHE', 'HIER_REPRO_RUNS'): monkeypatch.setenv(k, str(tmp_path / k))
    monkeypatch.delenv('HR_T0', raising=False)
    rc = gpu.main(['--smoke', '--skip-throughput', '--no-cli-check', '--budget-s', '5', '--threads', '1', '--cub', str(cub_archive),
                  '--out', str(tmp_path / 'out'), '--work', str(tmp_path / 'work')])
    t = json.loads((tmp_path / 'out' / 'timings.json').read_text())
    assert rc == 0 and t['grid']['points'] == [] and t['records_packed'] == 0
    assert len(t['grid']['skipped']) == len(gpu.CLAIM_POINTS) and all(s['reason'].startswith('deadline') for s in t['grid']['skipped'])
    assert 'skipped: proxydr model=proxydr option=standard seed 1 (deadline' in (tmp_path / 'out' / 'summary.md').read_text()


def test_grid_order_epochs_and_deadline_rule():
    pts = gpu.grid_points('1-3')
    assert len(pts) == 3 * len(gpu.CLAIM_POINTS) and [s for s, _, _ in pts] == sorted(s for s, _, _ in pts)   # seed-major
    assert gpu.auto_epochs(2699, 300, 3000.0, 330, 21)[0] == 5 and gpu.auto_epochs(2699, 300, 100.0, 330, 21)[0] == 2
    assert gpu.auto_epochs(2699, 300, 1e6, 3000, 21)[0] == 15 and gpu.auto_epochs(2699, 300, None, 330, 21)[0] == 5
    assert gpu.must_skip(30, 25, 10) and not gpu.must_skip(40, 25, 10)
    table = [dict(model='efficientnet_lite0', batch=128, loop='fit', data='real', images_per_s=9e3),
             dict(model='efficientnet_lite0', batch=32, loop='fit', data='real', images_per_s=3000.0), dict(model='resnet50', batch=32, skipped='x')]
    assert gpu.choose_epochs('auto', False, 32, table, None, 330, 21) == gpu.auto_epochs(2699, 300, 3000.0, 330, 21)   # the grid's batch, real data
    assert gpu.choose_epochs('7', False, 32, table, None, 330, 21) == (7, 'given') and gpu.choose_epochs('auto', True, 8, [], None, 9, 7)[0] == 1


def test_provenance_from_the_carried_manifest(tmp_path, monkeypatch):
    import hier_repro.core
    blob = subprocess.run(['git', 'hash-object', 'settings.ini'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert gpu.git_blob_sha(ROOT / 'settings.ini') == blob          # git's own blob hash, computed without git
    src = tmp_path / 'SOURCE.json'
    src.write_text(json.dumps(dict(sha='abc123', files={'settings.ini': blob, 'setup.py': '0' * 40, 'results/x.json': '1' * 40})))
    monkeypatch.setattr(hier_repro.core, 'git_state', lambda: dict(sha='unknown', dirty=None, diff_sha256=None))   # a machine without .git
    prov = gpu.provenance(src)
    assert (prov['sha'], prov['dirty'], prov['differing']) == ('abc123', True, ['setup.py'])   # outputs (results/) do not count
    rec = tmp_path / 'r.json'; rec.write_text(json.dumps(dict(info=dict(git_sha='unknown', git_dirty=None))))
    gpu.stamp_record(rec, prov)
    assert json.loads(rec.read_text())['info'] == dict(git_sha='abc123', git_dirty=True, git_provenance=prov['how'])


def test_pack_cub_meets_its_budget_with_every_training_image(cub_source, tmp_path):
    out = tmp_path / 'c.tar.xz'
    args = [str(cub_source), str(out), '--classes', '5', '--train-per-class', '10', '--test-per-class', '5']
    pack.main(args); full = out.stat().st_size
    budget = (full - 8000) / 2**20                                   # about two test images too small
    assert pack.main(args + ['--max-mib', str(budget)]) == 0 and out.stat().st_size <= budget * 2**20
    with tarfile.open(out) as tf:
        note = json.load(tf.extractfile(next(m for m in tf.getmembers() if m.name.endswith('CARRY.json'))))
        n_img = sum(m.name.endswith('.jpg') for m in tf.getmembers())
    assert note['train_images'] == 50 and 0 < note['test_images'] < note['test_images_available'] == 25 and n_img == 50 + note['test_images']
    with pytest.raises(SystemExit, match='training images alone'): pack.main(args + ['--max-mib', '0.01'])
