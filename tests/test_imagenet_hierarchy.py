"ImageNet-1k WordNet hierarchy (data/hierarchies/imagenet1k*.csv): classes in index order, depths, known distances; rebuild when WordNet is installed."
import csv, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from hier_repro.hierarchy import Hierarchy
from conftest import ROOT

HDIR = ROOT / 'data' / 'hierarchies'
WORDNET = Path('/usr/share/wordnet')
FILES = {'first': 'imagenet1k.csv', 'shortest': 'imagenet1k_shortest.csv'}
# index: (class name, wnid) -- the standard ImageNet-1k class indices
KNOWN = {0: ('tench', 'n01440764'), 1: ('goldfish', 'n01443537'), 2: ('great white shark', 'n01484850'),
         207: ('golden retriever', 'n02099601'), 208: ('Labrador retriever', 'n02099712'),
         281: ('tabby', 'n02123045'), 817: ('sports car', 'n04285008'), 999: ('toilet tissue', 'n15075141')}


def _load(tree='first'): return Hierarchy.from_csv(HDIR / FILES[tree])
def _wnids(tree='first'): return [r['wnid'] for r in csv.DictReader((HDIR / FILES[tree]).read_text(encoding='utf-8').splitlines())]


@pytest.mark.parametrize('tree', sorted(FILES))
def test_classes_in_index_order(tree):
    h, w = _load(tree), _wnids(tree)
    assert h.n_classes == 1000 == len(set(h.classes)) == len(set(w))
    assert h.root == 'entity.n00001740'
    for i, (name, wnid) in KNOWN.items(): assert (h.classes[i], w[i]) == (name, wnid), i
    # duplicated first lemmas are disambiguated by wnid
    assert {'crane (n02012849)', 'crane (n03126707)', 'maillot (n03710637)', 'maillot (n03710721)'} <= set(h.classes)


@pytest.mark.parametrize('tree, dmin, dmax, top', [('first', 4, 18, 997), ('shortest', 4, 17, 997)])
def test_depths(tree, dmin, dmax, top):
    h = _load(tree)
    d = h.leaf_depths                      # edges below entity
    assert (d.min(), d.max(), h.depth) == (dmin, dmax, dmax)
    assert sum(p[0] == 'physical_entity.n00001930' for p in h.paths) == top   # the other 3 under abstraction
    # every leaf is a distinct node: no class is an ancestor of another
    D = h.distance_matrix()
    assert (D == D.T).all() and (np.diag(D) == 0).all() and (D[~np.eye(1000, dtype=bool)] > 0).all()


def test_known_distances():
    h = _load()
    D = h.distance_matrix()
    assert D[207, 208] == 2                                   # both retriever.n02099029
    assert D[0, 1] == 2                                       # both cyprinid.n01439121
    assert D[207, 817] == 23 and D[0, 817] == 22              # LCA whole.n00003553
    assert D[207, 208] < D[207, 817] and D[0, 1] < D[0, 817]
    assert D[207, 281] < D[207, 817]                          # dog-cat (carnivore) closer than dog-car
    assert D.max() == 27
    assert 'dog.n02084071' in h.paths[207] and 'car.n02958343' in h.paths[817]
    s = _load('shortest').distance_matrix()
    assert s[207, 208] == 2 and s[207, 817] == 17 and s.max() == 26


@pytest.mark.skipif(not (WORDNET / 'data.noun').exists(),
                    reason=f'{WORDNET}/data.noun not found: install WordNet 3.0 (apt-get install wordnet-base) to check the rebuild')
@pytest.mark.parametrize('tree', sorted(FILES))
def test_rebuild_reproduces_committed_csv(tree, tmp_path):
    "build_imagenet.py on WordNet 3.0, with the committed wnid column as the class list, gives the committed CSV byte for byte."
    syn = tmp_path / 'synsets.txt'
    syn.write_text('\n'.join(_wnids(tree)) + '\n')
    out = tmp_path / FILES[tree]
    r = subprocess.run([sys.executable, str(HDIR / 'build_imagenet.py'), '--wordnet', str(WORDNET), '--synsets', str(syn),
                        '--tree', tree, '--out', str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == (HDIR / FILES[tree]).read_bytes()
