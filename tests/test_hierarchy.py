"Every shipped hierarchy: number of classes, levels and known distances; readers on the published files."
import shutil, subprocess, sys
import numpy as np
import pytest
from hier_repro.hierarchy import (Hierarchy, HierarchyError, HIERARCHIES, load_hierarchy, read_proxydr_csv,
                                  read_cvjena, read_plantnet300k)
from conftest import ROOT

# name: (classes, depth, level sizes, max distance)
EXPECTED = {
    'cifar100': (100, 4, [3, 7, 20, 100], 8),
    'cifar100_coarse': (100, 2, [20, 100], 4),
    'cub': (200, 4, [13, 37, 121, 200], 8),
    'nabirds': (555, 4, [22, 228, 495, 555], 7),
    'micro_s': (109, None, None, None),
    'micro_l': (102, None, None, None),
    'meso_z': (52, None, None, None),
    'plantnet300k': (1081, 2, [303, 1081], 4),
    'pets': (37, 2, [2, 37], 4),
    'fashion_mnist': (10, 3, [2, 4, 10], 6),
    'imagenet1k': (1000, None, None, 27),            # WordNet: leaves at 4-18 edges below entity (tests/test_imagenet_hierarchy.py)
    'imagenet1k_shortest': (1000, None, None, None),
}


def test_every_hierarchy_is_tested():
    assert set(EXPECTED) == set(HIERARCHIES)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_shipped_hierarchy(name):
    n, depth, sizes, dmax = EXPECTED[name]
    h = load_hierarchy(name)
    D = h.distance_matrix()
    assert len(h.classes) == n == D.shape[0] == D.shape[1]
    assert (D == D.T).all() and (np.diag(D) == 0).all() and (D[~np.eye(n, dtype=bool)] > 0).all()
    if depth is not None: assert h.depth == depth
    if sizes is not None: assert [len(h.ancestors(l)[1]) for l in range(1, h.depth + 1)] == sizes
    if dmax is not None: assert D.max() == dmax


def _d(h, a, b): return h.distance_matrix()[h.classes.index(a), h.classes.index(b)]


def test_known_distances():
    c = load_hierarchy('cifar100')
    assert _d(c, 'apple', 'pear') == 2 and _d(c, 'maple_tree', 'oak_tree') == 2
    assert _d(c, 'baby', 'boy') == 2 and _d(c, 'baby', 'bear') == 4    # people vs large_carnivores, both Mammals
    assert _d(c, 'apple', 'baby') == 8
    cub = load_hierarchy('cub')
    assert cub.classes[0] == '001.Black_footed_Albatross'
    assert _d(cub, '001.Black_footed_Albatross', '002.Laysan_Albatross') == 2   # same genus Phoebastria
    assert _d(cub, '001.Black_footed_Albatross', '003.Sooty_Albatross') == 4    # same family, other genus
    assert _d(cub, '001.Black_footed_Albatross', '200.Common_Yellowthroat') == 8
    pets = load_hierarchy('pets')
    assert _d(pets, 'Abyssinian', 'Bengal') == 2 and _d(pets, 'Abyssinian', 'beagle') == 4
    assert sum(pets.ancestors(1)[0] == pets.ancestors(1)[1].index('cat')) == 12
    fm = load_hierarchy('fashion_mnist')
    assert _d(fm, 'Sneaker', 'Ankle boot') == 2 and _d(fm, 'Trouser', 'Dress') == 2 and _d(fm, 'Bag', 'Coat') == 6
    micro_l = load_hierarchy('micro_l')
    assert _d(micro_l, 'Tripos furca', 'Tripos furca duplets') == 1


def test_cifar_coarse_matches_proxydr_level3():
    c, cc = load_hierarchy('cifar100'), load_hierarchy('cifar100_coarse')
    assert c.classes == cc.classes
    a3, n3 = c.ancestors(3); a1, n1 = cc.ancestors(1)
    assert [n3[i] for i in a3] == [n1[i] for i in a1]


def test_load_hierarchy_errors(tmp_path):
    with pytest.raises(KeyError, match='known: cifar100'): load_hierarchy('imagenet')
    bad = tmp_path / 'bad.csv'; bad.write_text('label,class,path\n0,a,r//a\n2,b,r//b\n')
    with pytest.raises(HierarchyError, match='without gaps'): load_hierarchy(str(bad))


def test_mds_proxies_fit_cifar_tree():
    from scipy.stats import spearmanr
    h = load_hierarchy('cifar100')
    P, stress = h.mds_proxies()
    assert stress < 0.01
    DP = np.sqrt(np.clip(2 - 2 * (P @ P.T).numpy(), 0, None)); D = h.distance_matrix()
    rho = np.tanh(np.mean([np.arctanh(min(spearmanr(DP[:, i], D[:, i])[0], 1 - 1e-7)) for i in range(100)]))
    assert rho > 0.8
    P2, _ = h.mds_proxies(seed=0)
    assert np.allclose(P.numpy(), P2.numpy())   # seeded


def test_readers_on_published_files(shared_data):
    src = shared_data / 'hierarchies'
    cifar = read_proxydr_csv(src / 'cifar100/proxydr_CIFAR100_cls.csv')
    assert cifar.distance_matrix().max() == 8 and cifar.classes == load_hierarchy('cifar100').classes
    nab = read_proxydr_csv(src / 'nabirds/proxydr_nabirds_cls2.csv')
    assert len(nab.classes) == 555 and nab.root == 'Birds'
    wn = read_cvjena(src / 'cifar100/cvjena_cifar.parent-child.txt', src / 'cifar100/cvjena_class_names.txt', classes=range(100))
    assert len(wn.classes) == 100 and wn.classes[0] == 'apple'
    cub_ind = Hierarchy.from_indented(src / 'cub/cvjena_hierarchy_flat.txt')
    assert cub_ind.root == 'Aves' and len(cub_ind.ancestors(1)[1]) == 13
    pn = read_plantnet300k(src / 'plantnet300k/class_idx_to_species_id.json', src / 'plantnet300k/plantnet300K_species_id_2_name.json')
    assert len(pn.classes) == 1081 and len(pn.ancestors(1)[1]) == 303


def test_build_script_reproduces_shipped_files(shared_data, tmp_path):
    "data/hierarchies/build.py run on the published files gives exactly the committed CSVs."
    out = tmp_path / 'hierarchies'; out.mkdir()
    shutil.copy(ROOT / 'data/hierarchies/build.py', out / 'build.py')
    r = subprocess.run([sys.executable, str(out / 'build.py'), str(shared_data / 'hierarchies')], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for f in (ROOT / 'data/hierarchies').glob('*.csv'):
        if f.name.startswith('imagenet1k'): continue   # built from WordNet by build_imagenet.py (tests/test_imagenet_hierarchy.py)
        assert (out / f.name).read_text(encoding='utf-8') == f.read_text(encoding='utf-8'), f.name
