"Datasets: every reader on a tiny fixture in the official format, downloads (good, corrupted, resumed), options, real data."
import csv, gzip, re, hashlib, http.server, json, pickle, shutil, socket, struct, subprocess, sys, tarfile, threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hier_repro.datasets as D
from hier_repro.datasets import (get_dataset, list_datasets, make_augment, download_url, extract_archive, ChecksumError,
                                 DatasetNotFoundError, Split, FileSplit, label_noise_groups, read_cub_metadata)
from hier_repro.hierarchy import HierarchyError, load_hierarchy
from conftest import ROOT, SHARED


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    "Every test gets its own cache and download folders."
    monkeypatch.setenv('HIER_REPRO_CACHE', str(tmp_path / 'cache'))
    monkeypatch.delenv('HIER_REPRO_DATASETS', raising=False)


def jpg(path, value=0, size=(24, 18), mode='RGB'):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).convert(mode).save(path)


def md5(path): return hashlib.md5(Path(path).read_bytes()).hexdigest()


def csv_rows(name):
    with open(ROOT / 'data' / 'hierarchies' / f'{name}.csv', newline='', encoding='utf-8') as f: return list(csv.DictReader(f))


# ---------------------------------------------------------------- registry, embedded default

def test_list_and_unknown_names():
    names = list_datasets()
    assert {'fashion_mnist_small', 'fashion_mnist', 'cifar100', 'cub', 'flowers102', 'pets', 'nabirds', 'plantnet300k', 'imagefolder'} <= set(names)
    with pytest.raises(KeyError, match='known: fashion_mnist_small, fashion_mnist, cifar100'): get_dataset('imagenet')
    with pytest.raises(TypeError, match='unknown option'): get_dataset('fashion_mnist_small', label_nosie=0.1)
    with pytest.raises(TypeError, match="unknown option.*train_flag"): get_dataset('fashion_mnist_small', train_flag=0)


def test_embedded_default_needs_no_network_and_no_shared(monkeypatch, tmp_path):
    def no_net(*a, **k): raise AssertionError('the embedded default must not touch the network')
    monkeypatch.setattr(socket, 'socket', no_net); monkeypatch.setattr(D, '_urlopen', no_net)
    monkeypatch.setenv('HIER_REPRO_SHARED', str(tmp_path / 'no-shared'))
    d = get_dataset('fashion_mnist_small')
    assert (len(d.train), len(d.val), len(d.test)) == (10000, 2000, 2000)
    for s, n in ((d.train, 1000), (d.val, 200), (d.test, 200)): assert np.bincount(s.y.numpy()).tolist() == [n] * 10
    assert d.image_shape == (1, 28, 28) and d.train.x.dtype == torch.uint8 and d.n_classes == 10
    assert d.hierarchy.depth == 3 and d.hierarchy.classes == d.classes
    assert 'sha256' in d.description['verified']
    json.dumps(d.description)
    assert (ROOT / 'data' / 'fashion_mnist_small.npz').stat().st_size < 8e6


def test_embedded_default_checksum_guards_the_file(tmp_path, monkeypatch):
    bad = tmp_path / 'fashion_mnist_small.npz'
    shutil.copy(ROOT / 'data' / 'fashion_mnist_small.npz', bad)
    with open(bad, 'ab') as f: f.write(b'x')
    with pytest.raises(ChecksumError, match='sha256'): D.read_fashion_mnist_small(root=tmp_path)


@pytest.mark.skipif(not Path(D.DEBIAN_FASHION_MNIST).exists(), reason='Debian package dataset-fashion-mnist not installed (apt-get install dataset-fashion-mnist)')
def test_embedded_default_is_rebuilt_exactly_from_the_official_files(tmp_path):
    out = tmp_path / 'small.npz'
    r = subprocess.run([sys.executable, str(ROOT / 'data' / 'make_fashion_mnist_small.py'), D.DEBIAN_FASHION_MNIST, '--out', str(out), '--no-register'],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with np.load(out) as a, np.load(ROOT / 'data' / 'fashion_mnist_small.npz') as b:
        assert sorted(a.files) == sorted(b.files) and all((a[k] == b[k]).all() for k in a.files)
        official = D.read_idx(Path(D.DEBIAN_FASHION_MNIST) / 'train-images-idx3-ubyte.gz')
        assert (official[b['idx_train']] == b['x_train']).all() and not set(b['idx_train']) & set(b['idx_val'])
    assert D.file_sha256(out) == D.checksums()['fashion_mnist_small']['files'][0]['sha256']


# ---------------------------------------------------------------- Fashion-MNIST

def write_idx(path, a):
    a = np.asarray(a, np.uint8)
    with gzip.open(path, 'wb') as f: f.write(bytes([0, 0, 8, a.ndim]) + struct.pack(f'>{a.ndim}I', *a.shape) + a.tobytes())


def fmnist_fixture(root, n_train=40, n_test=20):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for stem, n in (('train', n_train), ('t10k', n_test)):
        write_idx(root / f'{stem}-images-idx3-ubyte.gz', rng.integers(0, 256, (n, 28, 28)))
        write_idx(root / f'{stem}-labels-idx1-ubyte.gz', np.arange(n) % 10)
    return root


def test_fashion_mnist_fixture(tmp_path):
    d = get_dataset('fashion_mnist', root=fmnist_fixture(tmp_path / 'fm'))
    assert (len(d.train), len(d.val), len(d.test)) == (36, 4, 20)
    assert np.bincount(d.val.y.numpy(), minlength=10).tolist() == [1] * 4 + [0] * 6     # 10% of 40, largest remainder
    assert 'NOT the official' in d.description['verified'] and 'val = 10%' in d.description['val_split']
    d2 = get_dataset('fashion_mnist', root=tmp_path / 'fm', image_size=32)
    assert d2.train.x.shape[1:] == (1, 32, 32) and next(d2.test.batches(5))[0].shape == (5, 1, 32, 32)


def test_fashion_mnist_missing_says_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setattr(D, 'DEBIAN_FASHION_MNIST', str(tmp_path / 'nothing'))
    with pytest.raises(DatasetNotFoundError) as e: D.read_fashion_mnist(root=tmp_path / 'empty')
    msg = str(e.value)
    assert str(tmp_path / 'empty') in msg and 'download=True' in msg and 'fashion-mnist' in msg.lower()


@pytest.mark.skipif(not Path(D.DEBIAN_FASHION_MNIST).exists(), reason='Debian package dataset-fashion-mnist not installed (apt-get install dataset-fashion-mnist)')
def test_fashion_mnist_from_debian_package():
    d = get_dataset('fashion_mnist')
    assert (len(d.train) + len(d.val), len(d.test)) == (60000, 10000) and len(d.val) == 6000
    assert d.description['source'] == D.DEBIAN_FASHION_MNIST and d.description['verified'].startswith('official')


# ---------------------------------------------------------------- downloads

def test_download_good_corrupted_and_atomic(tmp_path):
    src = tmp_path / 'src.bin'; src.write_bytes(b'0123456789' * 1000)
    got = download_url(src.as_uri(), tmp_path / 'dl' / 'a.bin', md5(src), progress=False)
    assert got.read_bytes() == src.read_bytes()
    with pytest.raises(ChecksumError) as e: download_url(src.as_uri(), tmp_path / 'dl' / 'b.bin', 'f' * 32, progress=False)
    assert 'b.bin' in str(e.value) and md5(src) in str(e.value) and 'f' * 32 in str(e.value)
    assert sorted(p.name for p in (tmp_path / 'dl').iterdir()) == ['a.bin']


def test_download_progress_is_lines_in_a_log(tmp_path, monkeypatch, capsys):
    "Under papermill / CI (no terminal, no widgets) a download prints progress lines, ending at 100 %."
    monkeypatch.setenv('HIER_REPRO_PROGRESS', 'lines')
    src = tmp_path / 'src.bin'; src.write_bytes(b'x' * 1_000_000)
    download_url(src.as_uri(), tmp_path / 'dl' / 'a.bin', md5(src), progress=True)
    assert re.search(r'a\.bin: 1\.0/1\.0 MB \(100%\)', capsys.readouterr().out)
    download_url(src.as_uri(), tmp_path / 'dl' / 'b.bin', md5(src), progress=False)
    assert capsys.readouterr().out == ''


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    "Serves files with HTTP Range support (the standard handler has none); counts bytes sent."
    sent = 0
    def log_message(self, *a): pass
    def do_GET(self):
        data = (Path(self.directory) / self.path.lstrip('/')).read_bytes()
        rng = self.headers.get('Range')
        start = int(rng.split('=')[1].split('-')[0]) if rng else 0
        self.send_response(206 if rng else 200)
        self.send_header('Content-Length', str(len(data) - start)); self.end_headers()
        RangeHandler.sent += len(data) - start    # counted before writing: the client may finish reading before this thread resumes
        self.wfile.write(data[start:])


def test_download_resumes_a_partial_file(tmp_path):
    (tmp_path / 'srv').mkdir(); payload = bytes(range(256)) * 4000
    (tmp_path / 'srv' / 'f.bin').write_bytes(payload)
    handler = lambda *a, **k: RangeHandler(*a, directory=str(tmp_path / 'srv'), **k)
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        dest = tmp_path / 'dl' / 'f.bin'; dest.parent.mkdir()
        (tmp_path / 'dl' / 'f.bin.part').write_bytes(payload[:300000])
        RangeHandler.sent = 0
        download_url(f'http://127.0.0.1:{srv.server_port}/f.bin', dest, hashlib.md5(payload).hexdigest(), progress=False)
        assert dest.read_bytes() == payload and RangeHandler.sent == len(payload) - 300000
    finally: srv.shutdown()


def test_extract_refuses_traversal_and_leaves_nothing(tmp_path):
    import io
    with tarfile.open(tmp_path / 'evil.tar.gz', 'w:gz') as t:
        for name in ('ok/a.txt', '../../escape.txt'):
            ti = tarfile.TarInfo(name); ti.size = 1; t.addfile(ti, io.BytesIO(b'x'))
    with pytest.raises(Exception): extract_archive(tmp_path / 'evil.tar.gz', tmp_path / 'out')
    assert list((tmp_path / 'out').iterdir()) == [] and not (tmp_path.parent / 'escape.txt').exists()


# ---------------------------------------------------------------- CIFAR-100

FINE = ['apple', 'aquarium_fish', 'baby']          # official fine labels 0, 1, 2


def cifar_fixture(folder, n=(12, 6)):
    "A 3-class CIFAR-100 python set: train / test / meta pickles in the official format (protocol 2, like the originals)."
    folder.mkdir(parents=True, exist_ok=True)
    coarse_of = {r['class']: int(r['coarse_label']) for r in csv_rows('cifar100')}
    coarse_names = [r['path'].split('//')[0] for r in sorted(csv_rows('cifar100_coarse'), key=lambda r: int(r['coarse_label']))]
    coarse_names = list(dict.fromkeys(r['path'].split('//')[0] for r in sorted(csv_rows('cifar100_coarse'), key=lambda r: int(r['coarse_label']))))
    rng = np.random.default_rng(0)
    for part, m in zip(('train', 'test'), n):
        fine = [i % 3 for i in range(m)]
        d = {'filenames': [f'{i}.png' for i in range(m)], 'batch_label': part, 'fine_labels': fine,
             'coarse_labels': [coarse_of[FINE[f]] for f in fine], 'data': rng.integers(0, 256, (m, 3072), dtype=np.uint8)}
        with open(folder / part, 'wb') as f: pickle.dump(d, f, protocol=2)
    with open(folder / 'meta', 'wb') as f: pickle.dump({'fine_label_names': FINE, 'coarse_label_names': coarse_names}, f, protocol=2)
    return folder


def test_cifar100_fixture(tmp_path):
    cifar_fixture(tmp_path / 'c' / 'cifar-100-python')
    d = get_dataset('cifar100', root=tmp_path / 'c', val_fraction=0.25)
    assert d.classes == FINE and d.image_shape == (3, 32, 32) and (len(d.train), len(d.val), len(d.test)) == (9, 3, 6)
    assert d.hierarchy.depth == 4 and d.hierarchy.distance_matrix().tolist() == [[0, 8, 8], [8, 0, 6], [8, 6, 0]]
    assert d.train.coarse.tolist() == [[4, 1, 14][int(c)] for c in d.train.y] and 'NOT the official' in d.description['verified']
    d2 = get_dataset('cifar100', root=tmp_path / 'c', hierarchy='cifar100_coarse')
    assert d2.hierarchy.depth == 2


def test_cifar100_wrong_coarse_labels_and_unsafe_pickles_are_refused(tmp_path):
    f = cifar_fixture(tmp_path / 'c')
    d = pickle.load(open(f / 'train', 'rb')); d['coarse_labels'] = [0] * len(d['coarse_labels'])
    pickle.dump(d, open(f / 'train', 'wb'), protocol=2)
    with pytest.raises(ValueError, match='disagree with the official superclasses'): get_dataset('cifar100', root=f)
    pickle.dump({'data': Path('.')}, open(f / 'train', 'wb'))
    with pytest.raises(pickle.UnpicklingError, match='not allowed'): get_dataset('cifar100', root=f)


def test_cifar100_download_path_good_and_corrupted(tmp_path, monkeypatch):
    "The registered tarball, served from a local file:// URL: md5 checked, extracted, loaded; a corrupted one keeps nothing."
    cifar_fixture(tmp_path / 'pkg' / 'cifar-100-python')
    tb = tmp_path / 'srv' / 'cifar-100-python.tar.gz'; tb.parent.mkdir()
    with tarfile.open(tb, 'w:gz') as t: t.add(tmp_path / 'pkg' / 'cifar-100-python', arcname='cifar-100-python')
    reg = D.checksums()
    reg['cifar100']['files'][0].update(urls=[tb.as_uri()], md5=md5(tb))
    monkeypatch.setattr(D, 'checksums', lambda: reg)
    with pytest.raises(DatasetNotFoundError, match='download=True'): get_dataset('cifar100', root=tmp_path / 'dl')
    d = get_dataset('cifar100', root=tmp_path / 'dl', download=True)
    assert d.classes == FINE and (tmp_path / 'dl' / 'cifar-100-python' / 'meta').exists()
    # corrupted: the served file differs from the registered md5
    reg['cifar100']['files'][0]['md5'] = '0' * 32
    with pytest.raises(ChecksumError) as e: get_dataset('cifar100', root=tmp_path / 'dl2', download=True)
    assert 'cifar-100-python.tar.gz' in str(e.value) and md5(tb) in str(e.value) and '0' * 32 in str(e.value)
    assert not (tmp_path / 'dl2').exists() or list((tmp_path / 'dl2').iterdir()) == []
    # a tarball lying in root is checked before it is extracted
    shutil.copy(tb, tmp_path / 'dl3.tar.gz'); (tmp_path / 'dl3').mkdir(); shutil.move(tmp_path / 'dl3.tar.gz', tmp_path / 'dl3' / 'cifar-100-python.tar.gz')
    with pytest.raises(ChecksumError, match='md5'): get_dataset('cifar100', root=tmp_path / 'dl3')


# ---------------------------------------------------------------- CUB and NABirds

CUB = {1: '001.Black_footed_Albatross', 4: '004.Groove_billed_Ani', 200: '200.Common_Yellowthroat'}


def cub_like_fixture(root, classes: dict, rows, missing=()):
    "images.txt, image_class_labels.txt, train_test_split.txt, classes.txt and images/ for rows (image id, class id, is_train)."
    for i, c, _ in rows:
        if i not in missing: jpg(root / 'images' / f'{c:04d}' / f'{i}.jpg', value=10 * i)
    (root / 'images').mkdir(parents=True, exist_ok=True)
    (root / 'classes.txt').write_text(''.join(f'{c} {n}\n' for c, n in classes.items()))
    (root / 'images.txt').write_text(''.join(f'{i} {c:04d}/{i}.jpg\n' for i, c, _ in rows))
    (root / 'image_class_labels.txt').write_text(''.join(f'{i} {c}\n' for i, c, _ in rows))
    (root / 'train_test_split.txt').write_text(''.join(f'{i} {t}\n' for i, _, t in rows))
    return root


def test_cub_fixture_six_images(tmp_path):
    rows = [(1, 1, 1), (2, 1, 0), (3, 4, 1), (4, 4, 0), (5, 200, 1), (6, 200, 0)]
    cub_like_fixture(tmp_path / 'CUB_200_2011', CUB, rows)
    d = get_dataset('cub', root=tmp_path, image_size=16, val_fraction=0)
    assert d.class_ids == [1, 4, 200] and d.classes == list(CUB.values()) and d.hierarchy.classes == d.classes
    assert (len(d.train), len(d.val), len(d.test)) == (3, 0, 3) and d.train.x.shape == (3, 3, 16, 16)
    assert d.hierarchy.root == 'Aves' and [len(d.hierarchy.ancestors(l)[1]) for l in (1, 2, 3, 4)] == [3, 3, 3, 3]
    assert d.train.x[:, 0, 8, 8].tolist() == [10, 30, 50]              # image i has value 10 i: rows follow images.txt
    flipped = get_dataset('cub', root=tmp_path, image_size=16, val_fraction=0, train_flag=0)
    assert flipped.train.x[:, 0, 8, 8].tolist() == [20, 40, 60] and 'inverted' in flipped.description['official_split']
    x = next(d.train.batches(3))[0]
    assert torch.allclose(x[:, 0, 8, 8], (torch.tensor([10., 30., 50.]) / 255 - 0.485) / 0.229, atol=1e-3)


def test_cub_partial_copy_and_bad_names(tmp_path):
    rows = [(i, c, i % 2) for i, c in enumerate([1, 1, 1, 4, 4, 4], 1)]
    cub_like_fixture(tmp_path / 'r', {**CUB}, rows, missing={6})
    d = get_dataset('cub', root=tmp_path / 'r', image_size=8, val_fraction=0, cache=False)
    assert d.class_ids == [1, 4] and d.description['missing_images'] == 1 and len(d.train) + len(d.test) == 5
    (tmp_path / 'r' / 'classes.txt').write_text('1 001.Not_an_albatross\n4 004.Groove_billed_Ani\n')
    with pytest.raises(HierarchyError, match='not official CUB'): get_dataset('cub', root=tmp_path / 'r')


def test_nabirds_fixture(tmp_path):
    rows_h = csv_rows('nabirds')
    picks = [rows_h[0], rows_h[1], rows_h[300]]
    classes = {int(r['class_id']): r['class'] for r in picks}
    rows = [(i, int(picks[i % 3]['class_id']), int(i < 6)) for i in range(9)]
    cub_like_fixture(tmp_path / 'nabirds', classes, rows)
    d = get_dataset('nabirds', root=tmp_path, image_size=8, val_fraction=0)
    full = load_hierarchy('nabirds')
    assert d.classes == [r['class'] for r in picks] and d.class_ids == [int(r['class_id']) for r in picks]
    D_full = full.distance_matrix()
    assert (d.hierarchy.distance_matrix() == D_full[np.ix_([0, 1, 300], [0, 1, 300])]).all()
    assert (len(d.train), len(d.test)) == (6, 3)


# ---------------------------------------------------------------- Flowers 102, Pets

def test_flowers102_fixture(tmp_path):
    from scipy.io import savemat
    labels = np.array([1, 1, 2, 2, 102, 102, 1, 2, 102])
    for i in range(1, 10): jpg(tmp_path / 'flowers-102' / 'jpg' / f'image_{i:05d}.jpg', value=i)
    savemat(tmp_path / 'flowers-102' / 'imagelabels.mat', {'labels': labels[None]})
    savemat(tmp_path / 'flowers-102' / 'setid.mat', {'trnid': np.array([[1, 3, 5]]), 'valid': np.array([[2, 4, 6]]), 'tstid': np.array([[7, 8, 9]])})
    d = get_dataset('flowers102', root=tmp_path, image_size=8)
    assert d.classes == ['pink primrose', 'hard-leaved pocket orchid', 'blackberry lily'] and d.class_ids == [1, 2, 102]
    assert (len(d.train), len(d.val), len(d.test)) == (3, 3, 3) and d.test.y.tolist() == [0, 1, 2]
    assert d.hierarchy.depth == 1 and d.hierarchy.root == 'flowers' and 'official val' in d.description['val_split']


def test_pets_fixture(tmp_path):
    ids = {r['class']: int(r['class_id']) for r in csv_rows('pets')}
    breeds = ['Abyssinian', 'american_bulldog', 'Bengal']
    r = tmp_path / 'oxford-iiit-pet'
    lines = [f'{b}_{k} {ids[b]} {1 if b[0].isupper() else 2} {k}' for b in breeds for k in range(1, 5)]
    for l in lines: jpg(r / 'images' / f"{l.split()[0]}.jpg")
    (r / 'annotations').mkdir()
    (r / 'annotations' / 'list.txt').write_text('#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n' + '\n'.join(lines) + '\n')
    (r / 'annotations' / 'trainval.txt').write_text('\n'.join(l for l in lines if not l.split()[0].endswith('_4')) + '\n')
    (r / 'annotations' / 'test.txt').write_text('\n'.join(l for l in lines if l.split()[0].endswith('_4')) + '\n')
    d = get_dataset('pets', root=tmp_path, image_size=8, val_fraction=0.34)
    assert d.classes == ['Abyssinian', 'american_bulldog', 'Bengal'] and d.class_ids == [1, 2, 6]
    assert [p[0] for p in d.hierarchy.paths] == ['cat', 'dog', 'cat'] and d.hierarchy.distance_matrix()[0].tolist() == [0, 4, 2]
    assert (len(d.train), len(d.val), len(d.test)) == (6, 3, 3)
    (r / 'annotations' / 'test.txt').write_text('Bengal_4 7 1 4\n')
    with pytest.raises(ValueError, match='disagree with the official class ids'): get_dataset('pets', root=tmp_path)


# ---------------------------------------------------------------- Pl@ntNet-300K, image folders

def test_plantnet300k_fixture_in_memory_and_from_files(tmp_path):
    leaves = [r['class'] for r in csv_rows('plantnet300k')]
    sids = [leaves[i].split(' ', 1)[0] for i in (5, 0, 700)]
    r = tmp_path / 'plantnet_300K' / 'images'
    for s, n in (('train', 3), ('val', 1), ('test', 1)):
        for sid in sids:
            for k in range(n): jpg(r / s / sid / f'{sid}_{k}.jpg', value=int(sid) % 200)
    d = get_dataset('plantnet300k', root=tmp_path, image_size=8)
    assert d.class_ids == [int(leaves[i].split()[0]) for i in (0, 5, 700)]            # hierarchy label order
    assert d.classes == [leaves[i] for i in (0, 5, 700)] and d.hierarchy.depth == 2
    assert (len(d.train), len(d.val), len(d.test)) == (9, 3, 3)
    f = get_dataset('plantnet300k', root=tmp_path, image_size=8, in_memory=False)
    assert isinstance(f.train, FileSplit) and 'DataLoader' in f.description['storage']
    g = torch.Generator().manual_seed(3)
    xa, ya, ia = next(d.train.batches(4, shuffle=True, generator=torch.Generator().manual_seed(3)))
    xb, yb, ib = next(f.train.batches(4, shuffle=True, generator=g))
    assert torch.equal(ia, ib) and torch.equal(ya, yb) and torch.allclose(xa, xb)
    (r / 'train' / '999999999').mkdir(); jpg(r / 'train' / '999999999' / 'x.jpg')
    with pytest.raises(HierarchyError, match='999999999'): get_dataset('plantnet300k', root=tmp_path)


def imagefolder_fixture(root, classes, per_class=5):
    for c in classes:
        for k in range(per_class): jpg(root / c / f'{k}.png', value=20 * k)
    return root


def test_imagefolder_with_each_hierarchy_format(tmp_path):
    r = imagefolder_fixture(tmp_path / 'plankton', ['Copepoda sp1', 'Copepoda sp2', 'Oithona sp'])
    h = load_hierarchy('micro_l'); idx = [h.classes.index(c) for c in ['Copepoda sp1', 'Copepoda sp2', 'Oithona sp']]
    want = h.distance_matrix()[np.ix_(idx, idx)]
    h.to_csv(tmp_path / 'project.csv')
    (tmp_path / 'proxydr.csv').write_text('Class,Path,Number\n' + ''.join(
        f'{c},/DATA_init/plankton_datasets/MicroL/{"/".join(p)},{i}\n' for i, (c, p) in enumerate(zip(h.classes, h.paths))))
    pairs = {(a, b) for p in (h.paths[i] for i in idx) for a, b in zip(('ROOT',) + p[:-1], p)}   # the three classes' paths
    (tmp_path / 'pc.tsv').write_text(''.join(f'{a}\t{b}\n' for a, b in sorted(pairs)))
    lines = []
    def walk(prefix, depth):
        kids = sorted({p[depth] for p in h.paths if p[:depth] == prefix and len(p) > depth})
        for k in kids: lines.append('--' * (depth + 1) + ' ' + k); walk(prefix + (k,), depth + 1)
    lines.append('ROOT'); walk((), 0)
    (tmp_path / 'indented.txt').write_text('\n'.join(lines) + '\n')
    for f in ('project.csv', 'proxydr.csv', 'pc.tsv', 'indented.txt'):
        d = get_dataset('imagefolder', root=r, hierarchy=tmp_path / f, image_size=8)
        assert (d.hierarchy.distance_matrix() == want).all(), f
        assert (len(d.train), len(d.val), len(d.test)) == (11, 1, 3)     # test: 20% of each class; val: 10% of the rest, in all
        assert json.loads(json.dumps(d.description))['options']['hierarchy'] == str(tmp_path / f)
    flat = get_dataset('imagefolder', root=r, image_size=8, mode='L')
    assert flat.hierarchy.depth == 1 and flat.image_shape == (1, 8, 8) and flat.train.x.shape[1] == 1
    with pytest.raises(HierarchyError, match='Oithona sp'):
        (tmp_path / 'partial.tsv').write_text('ROOT\tCopepoda sp1\nROOT\tCopepoda sp2\n')
        get_dataset('imagefolder', root=r, hierarchy=tmp_path / 'partial.tsv')


def test_imagefolder_with_given_splits(tmp_path):
    for s in ('train', 'val', 'test'): imagefolder_fixture(tmp_path / 'f' / s, ['a', 'b'], 2)
    d = get_dataset('imagefolder', root=tmp_path / 'f', image_size=8)
    assert (len(d.train), len(d.val), len(d.test)) == (4, 4, 4) and d.classes == ['a', 'b']
    with pytest.raises(DatasetNotFoundError, match='class sub-folder'): get_dataset('imagefolder', root=tmp_path / 'f' / 'train' / 'a')


# ---------------------------------------------------------------- options

def test_label_noise_long_tail_subset_are_seeded_and_recorded():
    a = get_dataset('fashion_mnist_small', seed=3, label_noise=0.5, noise_groups='alphabetical', long_tail=20, classes=6)
    b = get_dataset('fashion_mnist_small', seed=3, label_noise=0.5, noise_groups='alphabetical', long_tail=20, classes=6)
    c = get_dataset('fashion_mnist_small', seed=4, label_noise=0.5, noise_groups='alphabetical', long_tail=20, classes=6)
    assert torch.equal(a.train.y, b.train.y) and a.classes == b.classes and not torch.equal(a.train.y_clean, c.train.y_clean)
    assert a.n_classes == 6 and a.hierarchy.classes == a.classes
    counts = np.bincount(a.train.y_clean.numpy(), minlength=6)
    assert counts.max() == 1000 and counts.min() == 50
    g = label_noise_groups(a.hierarchy, 'alphabetical')
    assert (g[a.train.y] == g[a.train.y_clean]).all() and a.val.y_clean is None and len(a.val) == 1200
    desc = json.loads(json.dumps(a.description))
    assert desc['label_noise']['changed'] == int((a.train.y != a.train.y_clean).sum()) and desc['long_tail']['ratio'] == 20
    assert desc['options']['classes'] == 6 and 'label noise p=0.5' in repr(a)


def test_batches_cover_the_split_once_and_augment():
    d = get_dataset('fashion_mnist_small', classes=['Bag', 'Sneaker'])
    aug = make_augment('affine', d.image_shape)
    seen = torch.cat([i for _, _, i in d.train.batches(300, shuffle=True, generator=torch.Generator().manual_seed(0), augment=aug)])
    assert sorted(seen.tolist()) == list(range(len(d.train)))
    x, y, i = next(d.test.batches(8))
    assert x.dtype == torch.float32 and torch.equal(y, d.test.y[:8]) and abs(float(x.mean())) < 1.5


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU here')
def test_on_gpu():
    d = get_dataset('fashion_mnist_small', device='cuda')
    aug = make_augment('crop', d.image_shape)
    x, y, i = next(d.train.batches(512, shuffle=True, generator=torch.Generator().manual_seed(0), device='cuda', augment=aug))
    assert x.is_cuda and y.is_cuda and i.is_cuda and x.shape == (512, 1, 28, 28)


# ---------------------------------------------------------------- real data (../shared/data)

def test_cub_subset_real(shared_data):
    root = shared_data / 'cub' / 'CUB_200_2011_subset100'
    d = get_dataset('cub', root=root, image_size=32, train_flag=0)        # this copy flags its training images 0 (see the notebook)
    assert d.n_classes == 100 and len(d.train) + len(d.val) + len(d.test) == 5902
    assert (len(d.train) + len(d.val), len(d.test)) == (2999, 2903) and (len(d.train), len(d.val)) == (2699, 300)
    assert np.bincount(d.val.y.numpy(), minlength=100).min() >= 2               # val = 10% of each class, stratified
    assert len(d.hierarchy.ancestors(1)[1]) == 13 and len(d.hierarchy.ancestors(2)[1]) == 30
    assert d.class_ids[:3] == [1, 4, 7] and d.train.x.shape[1:] == (3, 32, 32) and d.train.x.float().std() > 20
    official = get_dataset('cub', root=root, image_size=32)               # the flags as the official format reads them
    assert (len(official.train) + len(official.val), len(official.test)) == (2903, 2999)


def test_official_cub_metadata_parses(shared_data):
    m = read_cub_metadata(shared_data / 'cub' / 'official_metadata')
    assert len(m['image_id']) == len(m['path']) == 11788 and len(m['classes']) == 200
    assert int(m['is_train'].sum()) == 5994 and np.bincount(m['class_id'])[1:].min() >= 41
    assert [m['classes'][i] for i in range(1, 201)] == load_hierarchy('cub').classes
