"The built distributions: an sdist and a wheel that carry the data the library reads and the LICENSE, and a wheel that works from any folder."
import json, os, subprocess, sys, tarfile, zipfile
from pathlib import Path

import pytest

from hier_repro.core import checkout_root
from hier_repro.hierarchy import HIERARCHIES
from hier_repro.datasets import EMBEDDED

root = Path(__file__).resolve().parent.parent
DATA = ['checksums.json', EMBEDDED] + [f'hierarchies/{h}.csv' for h in HIERARCHIES]   # every file data_root() is read for


@pytest.fixture(scope='module')
def dists(tmp_path_factory):
    "`python -m build` of this checkout (the sdist, then the wheel built from the sdist), without network (--no-isolation)."
    pytest.importorskip('build', reason="the build package is missing: pip install -e '.[dev]'")
    out = tmp_path_factory.mktemp('dist')
    r = subprocess.run([sys.executable, '-m', 'build', '--no-isolation', '--outdir', str(out), str(root)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (wheel,), (sdist,) = out.glob('*.whl'), out.glob('*.tar.gz')
    return wheel, sdist


def test_wheel_carries_data_and_license(dists):
    names = set(zipfile.ZipFile(dists[0]).namelist())
    missing = [f for f in DATA if f'hier_repro/data/{f}' not in names]
    assert not missing, f'the wheel lacks {missing}: see PACKAGE_DATA in setup.py'
    assert any(n.endswith('.dist-info/licenses/LICENSE') or n.endswith('.dist-info/LICENSE') for n in names)
    assert not [n for n in names if '/cache/' in n or n.endswith('.pyc')]


def test_sdist_carries_settings_data_and_license(dists):
    with tarfile.open(dists[1]) as t: names = {n.split('/', 1)[1] for n in t.getnames() if '/' in n}
    assert {'settings.ini', 'LICENSE', 'setup.py', 'README.md'} <= names
    assert not [f for f in DATA if f'data/{f}' not in names]
    assert not [n for n in names if n.startswith('data/cache')]


def test_installed_wheel_works_from_another_folder(dists, tmp_path):
    "The wheel unpacked into a git repository of its own (as a venv inside some project would be), imported from an unrelated folder."
    site, work = tmp_path / 'site', tmp_path / 'work'; work.mkdir()
    zipfile.ZipFile(dists[0]).extractall(site)
    subprocess.run(['git', 'init', '-q', str(site)], check=True)
    code = """
import json, hier_repro
from hier_repro import core
from hier_repro.hierarchy import load_hierarchy
from hier_repro.datasets import get_dataset
ds = get_dataset('fashion_mnist_small')
try: core.repo_root(); needs_checkout = False
except FileNotFoundError: needs_checkout = True
print(json.dumps(dict(file=hier_repro.__file__, classes=load_hierarchy('cifar100').n_classes, train=len(ds.train),
                      checkout=core.checkout_root() and str(core.checkout_root()), data=str(core.data_root()), results=str(core.results_root()),
                      runs=str(core.runs_root()), figures=str(core.figures_root()), cache=str(core.cache_root()), git=core.git_state(),
                      info_sha=core.run_info()['git_sha'], version=core.run_info()['hier_repro'], needs_checkout=needs_checkout)))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith('HIER_REPRO_')} | dict(PYTHONPATH=str(site), XDG_CACHE_HOME=str(tmp_path / 'xdg'))
    r = subprocess.run([sys.executable, '-c', code], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(got['file']).parent == site / 'hier_repro'   # the unpacked wheel, not this checkout
    assert got['classes'] == 100 and got['train'] == 10000
    assert got['checkout'] is None and got['needs_checkout'] and Path(got['data']) == site / 'hier_repro' / 'data'
    assert (Path(got['results']), Path(got['runs']), Path(got['figures'])) == (work / 'results', work / 'runs', work / 'figures')
    assert Path(got['cache']) == tmp_path / 'xdg' / 'hier_repro'
    assert got['git']['sha'] is None and got['info_sha'] is None   # not the sha of the repository around the install
    assert got['version'] == __import__('hier_repro').__version__


def test_checkout_keeps_its_folders():
    "Inside the checkout nothing moves: results/, runs/, figures/ and data/ are the repository's."
    from hier_repro import core
    env = {k for k in os.environ if k.startswith('HIER_REPRO_')}
    if env: pytest.skip(f'{sorted(env)} set: the defaults are not in force')
    assert checkout_root() == root
    assert (core.results_root(), core.runs_root(), core.figures_root(), core.data_root(), core.cache_root()) == \
           (root / 'results', root / 'runs', root / 'figures', root / 'data', root / 'data' / 'cache')
