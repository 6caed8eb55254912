"The repository's own consistency: environment.yml, README, CI entry point, exported modules."
import re, subprocess, sys
from pathlib import Path
import pytest

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root / 'tools'))
import make_environment, make_readme


def test_environment_yml_matches_settings():
    req, dev = make_environment.requirements()
    listed = re.findall(r'^\s+- "(.+)"$', (root / 'environment.yml').read_text(), flags=re.M)
    assert sorted(listed) == sorted(req + dev + ['-e .']), 'run python tools/make_environment.py'


def test_readme_is_rendered_from_index_notebook():
    assert (root / 'README.md').read_text(encoding='utf-8') == make_readme.render(), 'run python tools/make_readme.py'


def test_ci_runs_the_readme_test_command():
    ci = (root / '.ci' / 'run').read_text()
    assert 'make test' in ci and 'make test' in (root / 'README.md').read_text()


def test_settings_has_required_nbdev_keys():
    import configparser
    c = configparser.ConfigParser(delimiters=['=']); c.read(root / 'settings.ini')
    d = c['DEFAULT']
    assert d['lib_name'] == 'hier_repro' and d['tst_flags'].split() == ['notest', 'gpu', 'slow']
    assert d['allowed_cell_metadata_keys'] == 'tags'


def test_sync_check_detects_drift(tmp_path):
    "The sync check used by `make test` fails, naming the cause, when a module was edited by hand."
    import shutil
    for p in ['settings.ini', 'nbs', 'hier_repro', '.ci']:
        (shutil.copytree if (root / p).is_dir() else shutil.copy)(root / p, tmp_path / p)
    venv = Path(sys.executable).parent.parent
    ok = subprocess.run(['bash', '.ci/check_sync.sh', str(venv)], cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    with open(tmp_path / 'hier_repro' / 'hierarchy.py', 'a') as f: f.write('\n# edited by hand\n')
    bad = subprocess.run(['bash', '.ci/check_sync.sh', str(venv)], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 1 and 'out of sync' in bad.stderr
