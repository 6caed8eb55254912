#!/usr/bin/env python
"""Build data/fashion_mnist_small.npz, the embedded default dataset, from the official Fashion-MNIST files.

Usage:  python data/make_fashion_mnist_small.py [FOLDER] [--out PATH]

FOLDER holds the four official IDX files (train-images-idx3-ubyte.gz, ...). Default: /usr/share/datasets/fashion-mnist,
where the Debian package puts them:  apt-get update && apt-get install -y dataset-fashion-mnist
(without root: apt-get download dataset-fashion-mnist && dpkg -x dataset-fashion-mnist_*.deb x/ and pass
x/usr/share/datasets/fashion-mnist), or fetch them with
python -c "from hier_repro.datasets import fetch_dataset; print(fetch_dataset('fashion_mnist'))".
The files must be the official ones: the md5 of their decompressed bytes is checked against data/checksums.json.

What it writes (numpy default_rng(0), one permutation per class):
  train  1,000 images per class from the official training set   (10,000)
  val      200 images per class from the rest of the training set (2,000, disjoint from train)
  test     200 images per class from the official test set         (2,000)
Arrays x_<part> (N x 28 x 28 uint8), y_<part> (uint8 labels 0-9, official order) and idx_<part> (int32 row numbers in the
official files), each part in official order. The zip is written with fixed timestamps and deflate level 9, so the same
inputs give the same bytes (with the same zlib); its sha256 is written to data/checksums.json, which the loader checks.
"""
import argparse, hashlib, io, json, os, re, sys, zipfile
from pathlib import Path
import numpy as np

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here.parent))
from hier_repro.datasets import read_idx, _idx_md5, _idx_file, FASHION_MNIST_FILES, DEBIAN_FASHION_MNIST

PER_CLASS = {'train': 1000, 'val': 200, 'test': 200}


def read_official(folder: Path) -> dict:
    "The official arrays, checked against the registry's md5 of the decompressed IDX files."
    want = {f['name'].removesuffix('.gz'): f['raw_md5'] for f in json.loads((here / 'checksums.json').read_text())['fashion_mnist']['files']}
    out = {}
    for part, stems in FASHION_MNIST_FILES.items():
        arrays = []
        for stem in stems:
            f = _idx_file(folder, stem)
            if f is None: sys.exit(f"{folder}: {stem}(.gz) not found; see the usage at the top of this script")
            a = read_idx(f)
            if _idx_md5(a) != want[stem]: sys.exit(f"{f}: md5 of the decompressed file is {_idx_md5(a)}, the official one is {want[stem]}")
            arrays.append(a)
        out[part] = arrays
    return out


def select(y: np.ndarray, counts: list, rng) -> list:
    "Per class, a random permutation cut into consecutive blocks of the given sizes; each block sorted."
    blocks = [[] for _ in counts]
    for c in range(10):
        perm = rng.permutation(np.flatnonzero(y == c))
        o = 0
        for b, n in zip(blocks, counts): b.append(perm[o:o + n]); o += n
    return [np.sort(np.concatenate(b)).astype(np.int32) for b in blocks]


def write_npz(path: Path, arrays: dict):
    "A .npz (np.load reads it) with fixed timestamps: reproducible bytes. Written to a temporary name, then renamed."
    tmp = path.with_name(path.name + '.tmp')
    with zipfile.ZipFile(tmp, 'w') as z:
        for k, a in arrays.items():
            buf = io.BytesIO(); np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
            zi = zipfile.ZipInfo(f'{k}.npy', date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type, zi.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            z.writestr(zi, buf.getvalue(), compresslevel=9)
    os.replace(tmp, path)


def build(folder: Path, out: Path) -> str:
    off = read_official(folder)
    rng = np.random.default_rng(0)
    (xtr, ytr), (xte, yte) = off['train'], off['test']
    itr, iva = select(ytr, [PER_CLASS['train'], PER_CLASS['val']], rng)
    (ite,) = select(yte, [PER_CLASS['test']], rng)
    arrays = {}
    for part, (x, y, i) in {'train': (xtr, ytr, itr), 'val': (xtr, ytr, iva), 'test': (xte, yte, ite)}.items():
        arrays.update({f'x_{part}': x[i], f'y_{part}': y[i].astype(np.uint8), f'idx_{part}': i})
    write_npz(out, arrays)
    return hashlib.sha256(out.read_bytes()).hexdigest()


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('folder', nargs='?', default=DEBIAN_FASHION_MNIST, help='folder with the four official IDX files')
    ap.add_argument('--out', default=str(here / 'fashion_mnist_small.npz'))
    ap.add_argument('--no-register', action='store_true', help='do not write the sha256 into data/checksums.json')
    a = ap.parse_args()
    out = Path(a.out)
    sha = build(Path(a.folder), out)
    if not a.no_register:
        reg_path = here / 'checksums.json'
        text = reg_path.read_text()
        new = re.sub(r'("name": "fashion_mnist_small.npz", "sha256": ")[0-9a-f]*(")', rf'\g<1>{sha}\g<2>', text)
        assert json.loads(new)['fashion_mnist_small']['files'][0]['sha256'] == sha, 'could not record the sha256 in checksums.json'
        tmp = reg_path.with_name('checksums.json.tmp'); tmp.write_text(new); os.replace(tmp, reg_path)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB), sha256 {sha}")
