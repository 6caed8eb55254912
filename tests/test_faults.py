"""The catalogue of bad inputs and faults (issue 12): each case asserts the error type, that the message names the file or the
parameter and the fix, and that no file was lost, overwritten or half-written (the folder is compared before and after)."""
import hashlib, io, json, os, pickle, subprocess, sys, tarfile, warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from hier_repro.core import load_array_pickle, check_writable
from hier_repro.experiments import resolve_config, notebook_config, ConfigMismatch
from hier_repro.hierarchy import Hierarchy, HierarchyError, read_text_file
from hier_repro import proxydr, avgk, dmlcrc   # noqa: F401 (registers the specs)

VENV_BIN = Path(sys.executable).parent
pytestmark = pytest.mark.usefixtures('one_thread')


def snapshot(folder: Path) -> dict:
    "Path -> sha256 of every file under `folder` (what 'nothing lost or overwritten' is checked against)."
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob('*')) if p.is_file()}


# ---- parameters: types (papermill passes strings) and ranges, checked before any work --------------------------------------
@pytest.mark.parametrize('key,given,want', [('force', 'false', False), ('frozen', 'false', False), ('allow_dirty', 'True', True),
                                            ('epochs', '3', 3), ('lr', '1e-3', 1e-3), ('root', 'None', None)])
def test_papermill_strings_are_coerced(key, given, want):
    assert resolve_config('proxydr', profile='test', **{key: given})[key] == want


def test_notebook_grid_false_is_false():
    ns = dict(grid='false', seeds='1-3', force='false')
    assert notebook_config('proxydr', ns)['force'] is False and ns['grid'] is False


BAD = [('proxydr', 'epochs', 0, 'epochs = 0 is out of range'), ('proxydr', 'epochs', -2, 'epochs = -2'),
       ('proxydr', 'batch_size', 0, 'batch_size = 0'), ('proxydr', 'lr', 0, 'lr = 0.0 is out of range: it must be > 0'),
       ('proxydr', 'lr', float('inf'), 'lr = inf'), ('proxydr', 'lr', float('nan'), 'lr = nan'), ('proxydr', 'emb_dim', 0, 'emb_dim = 0'),
       ('avgk', 'lam', -1, 'lam = -1.0'), ('dmlcrc', 'tau', 0, 'tau = 0'), ('avgk', 'epochs', 0, 'epochs = 0'),
       ('dmlcrc', 'epochs', 0, 'epochs = 0'), ('proxydr', 'epochs', 2.5, 'epochs must be a number (int)'),
       ('proxydr', 'frozen', 'maybe', 'frozen must be true or false')]


@pytest.mark.parametrize('exp,key,value,message', BAD)
def test_out_of_range_values_are_refused_before_any_work(tmp_path, exp, key, value, message):
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
        from hier_repro.experiments import run
        run(exp, profile='test', results_dir=tmp_path, **{key: value})
    assert snapshot(tmp_path) == {}   # no record, no checkpoint


@pytest.mark.parametrize('seeds', ['abc', '1-x', ''])
def test_unreadable_seeds(seeds):
    with pytest.raises(ValueError, match='seeds'): notebook_config('proxydr', dict(seeds=seeds))


def test_cli_user_error_is_one_line(tmp_path):
    r = subprocess.run([str(VENV_BIN / 'hier-repro'), 'run', 'avgk', '--profile', 'test', '--epochs', '0', '--results-dir', str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and 'Traceback' not in r.stderr
    assert r.stderr.strip().splitlines() == ['hier-repro: error: epochs = 0 is out of range: it must be >= 1 and finite']


@pytest.mark.parametrize('argv, says', [
    (['run', 'proxydr', '--dataset', 'cifar10'], "argument --dataset: unknown dataset 'cifar10'; known: fashion_mnist_small"),
    (['grid', 'dmlcrc', '--method', 'crc,dml'], "argument --method: unknown method 'dml'; known: dmlcrc"),
    (['run', 'avgk', '--optimizer', 'lbfgs'], "unknown optimizer 'lbfgs'; known: adam, adamw, sgd"),
    (['run', 'proxydr', '--no-such-flag'], 'unrecognized arguments: --no-such-flag'),
    (['run', 'avgk', '--profile', 'test', '--set', 'download=true', '--epochs', '0'], 'epochs = 0 is out of range'),   # download: no KeyError
    (['run', 'avgk', '--set', 'download=perhaps'], 'download must be true or false'),
])
def test_cli_flag_errors_are_one_line(argv, says, tmp_path, capsys):
    from hier_repro.cli import main
    try: code = main([*argv, '--results-dir', str(tmp_path)])
    except SystemExit as e: code = e.code   # argparse's own errors
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and says in lines[0], lines


def test_cli_help_shows_choices_and_download(capsys):
    from hier_repro.cli import main
    with pytest.raises(SystemExit) as e: main(['run', 'dmlcrc', '--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert e.value.code == 0 and '--download' in text and 'one of: fashion_mnist_small, fashion_mnist, cifar100' in text
    assert "--dictionary NAME 'memory', 'full' or 'batch' (default: memory)" in text


# ---- the test profile's trim keeps every class in every split ---------------------------------------------------------------
def test_trim_keeps_every_class():
    from hier_repro.experiments import trim_split
    from hier_repro.models import TensorSplit
    class Rows(TensorSplit):
        def subset(self, idx): return Rows(self.x[idx], self.y[idx])
    y = torch.tensor(sum([[c] * (1 + 30 * (c == 0)) for c in range(100)], []))   # 99 classes with one image, one with 31
    s = trim_split(Rows(torch.zeros(len(y), 1), y), 120, 0)
    assert len(s) == 120 and set(s.y.tolist()) == set(range(100))


# ---- the report: unreadable records are skipped and named ------------------------------------------------------------------
def test_report_skips_truncated_and_old_schema_records(tmp_path):
    from test_report import make_synthetic_results
    from hier_repro.report import make_report
    res = tmp_path / 'results'; make_synthetic_results(res)
    bad = res / 'proxydr' / 'toy__net-frozen'
    (bad / 'cut__seed1.json').write_text('{"experiment": "proxydr", "seed": ')
    (bad / 'old__seed1.json').write_text(json.dumps({'seed': 1, 'metrics': {}}))
    before = snapshot(res)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always'); text = make_report(res, tmp_path / 'fig', verbose=False).read_text()
    msgs = ' '.join(str(x.message) for x in w)
    assert 'cut__seed1.json is not a valid result record' in msgs and "old__seed1.json: not a result record of this schema: it lacks ['experiment', 'config']" in msgs
    assert '2 unreadable record(s) skipped: `cut__seed1.json`, `old__seed1.json`' in text
    assert snapshot(res) == before


# ---- identity: a record of another config is refused, naming the keys ------------------------------------------------------
def test_record_of_another_config_is_refused_and_kept(tmp_path):
    rec = proxydr.run_proxydr(profile='test', model='softmax', results_dir=tmp_path)
    f = next(tmp_path.rglob('softmax-standard__seed1.json'))
    stored = json.loads(f.read_text()); stored['config']['root'] = '/elsewhere'; stored.pop('config_hash'); f.write_text(json.dumps(stored))
    before = snapshot(tmp_path)
    with pytest.raises(ConfigMismatch, match="root: stored '/elsewhere', asked None.*force=True"):
        proxydr.run_proxydr(profile='test', model='softmax', results_dir=tmp_path)
    assert snapshot(tmp_path) == before


# ---- training faults --------------------------------------------------------------------------------------------------------
class _Exploding(torch.nn.Module):
    "Cross-entropy times 1e3 per step: finite, but exploding (as lr 1e9 makes it)."
    def __init__(self): super().__init__(); self.k = 0
    def forward(self, out, y, idx=None):
        self.k += 1
        return torch.nn.functional.cross_entropy(out['scores'], y) * 1e3 ** self.k


def _toy_data():
    from types import SimpleNamespace
    from hier_repro.models import TensorSplit
    g = torch.Generator().manual_seed(0); y = torch.arange(64) % 2
    x = torch.randn(64, 4, generator=g) + y[:, None].float()
    return SimpleNamespace(train=TensorSplit(x, y), val=TensorSplit(x[:16], y[:16]))


class _Lin(torch.nn.Module):
    def __init__(self): super().__init__(); self.fc = torch.nn.Linear(4, 2)
    def forward(self, x): return {'scores': self.fc(x)}


def test_exploding_loss_stops_like_nan(tmp_path):
    from hier_repro.training import fit
    with pytest.raises(FloatingPointError, match='lower the learning rate'):
        fit(_Lin(), _Exploding(), _toy_data(), epochs=3, batch_size=8, lr=0.1, run_dir=tmp_path / 'run', log='none')
    assert not (tmp_path / 'run' / 'last.pt').exists()


def test_corrupt_checkpoint_names_its_path_and_force_gets_past_it(tmp_path):
    cfg = dict(profile='test', model='softmax', results_dir=tmp_path / 'res', run_dir=tmp_path / 'run')
    (tmp_path / 'run').mkdir(); (tmp_path / 'run' / 'last.pt').write_bytes(b'not a checkpoint')
    from hier_repro.experiments import checkpoint_dir, config_hash, identity
    (tmp_path / 'run' / 'train_config.json').write_text(json.dumps({'hash': config_hash(identity(resolve_config('proxydr', cfg)))}))
    with pytest.raises(RuntimeError, match=r"checkpoint .*run/last.pt cannot be read .*force=True"): proxydr.run_proxydr(cfg)
    assert not (tmp_path / 'res').exists()
    rec = proxydr.run_proxydr(cfg, force=True)
    assert rec['fit']['history'] and (tmp_path / 'run' / 'last.pt').stat().st_size > 100


def test_corrupt_feature_cache_names_the_file(tmp_path):
    from hier_repro.models import cached_features
    from test_models import _toy
    cached_features(_toy(), 'smallcnn', pretrained=False, cache_dir=tmp_path)
    f = next(tmp_path.glob('*.pt')); f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(RuntimeError, match=f'feature cache {f} cannot be read .*delete this file'):
        cached_features(_toy(), 'smallcnn', pretrained=False, cache_dir=tmp_path)


def test_unwritable_cache_is_found_before_the_work(tmp_path):
    (tmp_path / 'file').write_text('x')   # a folder that cannot be made (even as root): a file is in the way
    with pytest.raises(PermissionError, match='cannot write to .*set HIER_REPRO_CACHE to a writable folder'):
        check_writable(tmp_path / 'file' / 'features', 'HIER_REPRO_CACHE')
    from hier_repro.models import cached_features
    from test_models import _toy
    calls = []
    import hier_repro.models as M
    real = M.extract_features
    M.extract_features = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        with pytest.raises(PermissionError): cached_features(_toy(), 'smallcnn', pretrained=False, cache_dir=tmp_path / 'file' / 'features')
    finally: M.extract_features = real
    assert calls == []   # refused before any feature was computed


# ---- archives and pickles -----------------------------------------------------------------------------------------------------
def _tar(path: Path, files: dict):
    with tarfile.open(path, 'w:gz') as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))


def test_extraction_never_overwrites_or_deletes_the_users_files(tmp_path):
    from hier_repro.datasets import extract_archive
    _tar(tmp_path / 'a.tgz', {'CUB/images.txt': b'official', 'CUB/classes.txt': b'classes'})
    dest = tmp_path / 'root'; (dest / 'CUB').mkdir(parents=True)
    (dest / 'CUB' / 'images.txt').write_bytes(b'my own edit'); (dest / 'CUB' / 'notes.txt').write_bytes(b'mine')
    before = snapshot(dest)
    with pytest.raises(FileExistsError, match=r"would overwrite 1 file\(s\) of yours .*images.txt.*nothing was changed"):
        extract_archive(tmp_path / 'a.tgz', dest)
    assert snapshot(dest) == before
    (dest / 'CUB' / 'images.txt').write_bytes(b'official')                      # the same file as the archive's: kept, the rest added
    extract_archive(tmp_path / 'a.tgz', dest)
    assert snapshot(dest) == {**snapshot(dest), 'CUB/notes.txt': hashlib.sha256(b'mine').hexdigest()}
    assert (dest / 'CUB' / 'classes.txt').read_bytes() == b'classes' and (dest / 'CUB' / 'notes.txt').read_bytes() == b'mine'


def test_tar_extraction_needs_the_data_filter(tmp_path, monkeypatch):
    from hier_repro.datasets import extract_archive
    _tar(tmp_path / 'a.tgz', {'x.txt': b'x'})
    monkeypatch.delattr(tarfile, 'data_filter')
    with pytest.raises(RuntimeError, match=r"filter='data' \(Python >= 3.10.12"): extract_archive(tmp_path / 'a.tgz', tmp_path / 'out')
    assert not (tmp_path / 'out' / 'x.txt').exists()


class _Payload:
    def __init__(self, path): self.path = path
    def __reduce__(self): return (open, (self.path, 'w'))


def test_cifar_meta_runs_no_code(tmp_path):
    from hier_repro.hierarchy import read_cifar100_meta
    (tmp_path / 'meta').write_bytes(pickle.dumps({'fine_label_names': _Payload(str(tmp_path / 'pwned')), 'coarse_label_names': []}))
    with pytest.raises(pickle.UnpicklingError, match=r"meta: io.open is not allowed|meta: builtins.open is not allowed|is not allowed"):
        read_cifar100_meta(tmp_path / 'meta')
    assert not (tmp_path / 'pwned').exists()
    (tmp_path / 'ok').write_bytes(pickle.dumps({'fine_label_names': ['apple'], 'coarse_label_names': ['fruit']}))
    assert read_cifar100_meta(tmp_path / 'ok') == {'fine': ['apple'], 'coarse': ['fruit']}


# ---- images and metadata ---------------------------------------------------------------------------------------------------
def test_corrupt_jpeg_names_the_file(tmp_path):
    from PIL import Image
    from hier_repro.datasets import decode_image
    Image.new('RGB', (32, 32), 'red').save(tmp_path / 'a.jpg')
    (tmp_path / 'a.jpg').write_bytes((tmp_path / 'a.jpg').read_bytes()[:200])
    with pytest.raises(OSError, match=r'cannot read image .*a.jpg .*replace or delete the file'): decode_image(tmp_path / 'a.jpg', 16)


def _cub_tables(folder: Path, images='1 a/1.jpg\n2 a/2.jpg\n', labels='1 1\n2 1\n', split='1 1\n2 0\n'):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (('images.txt', images), ('image_class_labels.txt', labels), ('train_test_split.txt', split), ('classes.txt', '1 001.Black_footed_Albatross\n')):
        (folder / name).write_text(text)


@pytest.mark.parametrize('kw,message', [(dict(images='1 a/1.jpg\n1 a/2.jpg\n'), 'images.txt, row 2: image id 1 appears twice'),
                                        (dict(split='1 1\n2 7\n'), r'train_test_split.txt: flags must be 0 or 1, found \[7\]'),
                                        (dict(images='1 a/1.jpg\n2\n'), r"images.txt, row 2 \('2'\): expected '<id> <an image path>'"),
                                        (dict(labels='1 1\n2 x\n'), "image_class_labels.txt, row 2 .*'x' is not a class id")])
def test_cub_metadata_faults_name_the_file_and_row(tmp_path, kw, message):
    from hier_repro.datasets import read_cub_metadata
    _cub_tables(tmp_path / 'CUB', **kw)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=message): read_cub_metadata(tmp_path / 'CUB')
    assert snapshot(tmp_path) == before


# ---- hierarchy files -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('data,message', [('a,b\nAmélie,c\n'.encode('latin-1'), 'is not UTF-8 text .*save it as UTF-8'),
                                          (b'', 'is empty'), (b'\n  \n', 'is empty'),
                                          (b'label,class,path\n0,a,r//a\n1,b\n', r'line\(s\) \[3\]: every row needs a label, a class and a path')])
def test_bad_hierarchy_files(tmp_path, data, message):
    from hier_repro.datasets import read_hierarchy_file
    (tmp_path / 'h.csv').write_bytes(data)
    with pytest.raises(HierarchyError, match=message): read_hierarchy_file(tmp_path / 'h.csv', ['a', 'b', 'c'])


def test_hierarchy_file_with_a_bom_reads_as_without(tmp_path):
    from hier_repro.datasets import read_hierarchy_file
    text = 'parent,child\nbirds,a\nbirds,b\n'
    (tmp_path / 'bom.csv').write_bytes(b'\xef\xbb\xbf' + text.encode()); (tmp_path / 'plain.csv').write_text(text)
    a, b = read_hierarchy_file(tmp_path / 'bom.csv', ['a', 'b']), read_hierarchy_file(tmp_path / 'plain.csv', ['a', 'b'])
    assert a.paths == b.paths and a.depth == b.depth


# ---- an image folder with a hierarchy file, through the experiments ---------------------------------------------------------
def test_hierarchy_file_reaches_the_experiment(tmp_path):
    "The documented 'image folder + hierarchy file' use, through run_proxydr (and so the CLI and the notebooks)."
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, n in (('train', 6), ('val', 3), ('test', 3)):
        for k, c in enumerate(('robin', 'sparrow', 'salmon', 'trout')):
            (tmp_path / 'imgs' / split / c).mkdir(parents=True)
            for i in range(n): Image.fromarray((rng.random((16, 16, 3)) * 60 + 50 * k).astype(np.uint8)).save(tmp_path / 'imgs' / split / c / f'{i}.png')
    (tmp_path / 'tree.csv').write_text('parent,child\nanimals,birds\nanimals,fish\nbirds,robin\nbirds,sparrow\nfish,salmon\nfish,trout\n')
    rec = proxydr.run_proxydr(dataset='imagefolder', root=str(tmp_path / 'imgs'), hierarchy=str(tmp_path / 'tree.csv'), profile='test',
                              backbone='smallcnn', pretrained=False, image_size=16, R=5, results_dir=tmp_path / 'res')
    assert rec['config']['hierarchy'].endswith('tree.csv') and rec['dataset']['n_classes'] == 4
    assert sorted(set(rec['dataset']['tree_dist'])) == [2.0, 4.0]   # two levels: siblings 2 edges apart, across groups 4


def test_unknown_papermill_parameter_is_refused(tmp_path):
    "`-p lrr 0.1` (a misspelt lr) stops the notebook naming the parameter, instead of papermill's warning and a default run."
    args = [str(VENV_BIN / 'papermill'), str(Path(__file__).parent.parent / 'nbs' / 'exp_proxydr.ipynb'), str(tmp_path / 'out.ipynb'), '-k', 'python3',
            '--log-level', 'ERROR', '--cwd', str(Path(__file__).parent.parent / 'nbs'), '-p', 'profile', 'test', '-p', 'lrr', '0.1', '-p', 'results_dir', str(tmp_path / 'res')]
    r = subprocess.run(args, capture_output=True, text=True, env={**os.environ, 'OMP_WAIT_POLICY': 'PASSIVE'})
    assert r.returncode != 0 and "unknown notebook parameter(s) ['lrr']" in r.stderr + r.stdout
    assert not (tmp_path / 'res').exists()


def test_images_missing_from_a_copy_are_not_dropped_silently(tmp_path):
    from PIL import Image
    from hier_repro.datasets import _read_cub_like
    _cub_tables(tmp_path / 'CUB')
    (tmp_path / 'CUB' / 'images' / 'a').mkdir(parents=True); Image.new('RGB', (8, 8)).save(tmp_path / 'CUB' / 'images' / 'a' / '1.jpg')
    full = Hierarchy([['birds', '001.Black_footed_Albatross'], ['birds', 'other']])
    with pytest.warns(UserWarning, match=r"1 of the 2 images listed in images.txt are missing from images/ \(first: a/2.jpg\)"):
        try: _read_cub_like('cub', tmp_path / 'CUB', full, {1: 0}, 'toy')
        except Exception: pass   # what follows the warning is not this test's concern


def test_settings_a_name_does_not_print_get_their_own_record():
    "A key the stem only prints for some methods (Average-K's lam, for the two-head model) adds a hash for the others: no shared file."
    from hier_repro.experiments import record_path
    p = lambda e, **kw: record_path(e, resolve_config(e, profile='test', results_dir='/r', **kw)).name
    assert p('avgk', method='ce') == 'ce-K2-p0__seed1.json' and p('avgk', method='ce', lam=0.5).startswith('ce-K2-p0__h')
    assert p('avgk', method='two_head', lam=0.5) == 'two_head-K2-p0-lam0.5__seed1.json'
    assert p('dmlcrc', method='softmax', m=4).startswith('softmax__h') and p('proxydr', hierarchy='cifar100').startswith('proxydr-standard__h')
    assert p('proxydr', dataset='imagefolder', root='/a') != p('proxydr', dataset='imagefolder', root='/b')   # an image folder is its root


def test_grid_faults_are_found_before_any_work(tmp_path):
    from hier_repro.experiments import grid, run
    with pytest.raises(ValueError, match="proxydr has no option 'x'"): grid('proxydr', seeds='1', option='standard,x', profile='test', results_dir=tmp_path)
    with pytest.raises(ValueError, match="K: cannot read '3x'"): grid('avgk', seeds='1', K='2,3x', profile='test', results_dir=tmp_path)
    with pytest.raises(ValueError, match='not seed'): grid('avgk', seed=5, profile='test', results_dir=tmp_path)
    with pytest.raises(ValueError, match=r"\['epochs'\] hold several values"): run('proxydr', epochs=[0], profile='test', results_dir=tmp_path)
    assert snapshot(tmp_path) == {}
