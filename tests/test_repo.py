"The repository's own consistency: environment.yml, README, CI entry point, exported modules."
import re, subprocess, sys
from pathlib import Path
import pytest

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root / 'tools'))
import make_environment, make_readme


def test_environment_yml_matches_settings():
    listed = re.findall(r'^\s+- "(.+)"$', (root / 'environment.yml').read_text(), flags=re.M)
    assert listed == make_environment.requirements() + ['-e .'], 'run python tools/make_environment.py'
    assert {'jupyterlab', 'ipywidgets', 'build'} <= {re.split(r'[<>=]', r)[0] for r in listed}


def test_environment_refuses_a_package_listed_twice(tmp_path, monkeypatch):
    (tmp_path / 'settings.ini').write_text('[DEFAULT]\nrequirements = fastcore>=1.5 torch\ndev_requirements = fastcore<2\n')
    monkeypatch.setattr(make_environment, 'root', tmp_path)
    with pytest.raises(ValueError, match=r"\['fastcore'\] more than once"): make_environment.requirements()


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


def test_clean_check_names_each_notebook_to_clean(tmp_path):
    "The clean check used by `make test` passes on the committed notebooks and names an executed one, changing no file."
    import json, shutil
    for p in ['settings.ini', 'nbs', '.ci']:
        (shutil.copytree if (root / p).is_dir() else shutil.copy)(root / p, tmp_path / p)
    venv = Path(sys.executable).parent.parent
    ok = subprocess.run(['bash', '.ci/check_clean.sh', str(venv)], cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    nb_path = tmp_path / 'nbs' / 'exp_proxydr.ipynb'
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    cell = next(c for c in nb['cells'] if c['cell_type'] == 'code')
    cell['execution_count'] = 1; cell['metadata']['papermill'] = {'duration': 1.0}
    executed = json.dumps(nb, indent=1)
    nb_path.write_text(executed, encoding='utf-8')
    bad = subprocess.run(['bash', '.ci/check_clean.sh', str(venv)], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 1 and 'nbs/exp_proxydr.ipynb' in bad.stderr and 'run nbdev_clean' in bad.stderr
    assert 'nbs/00_hierarchy.ipynb' not in bad.stderr and nb_path.read_text(encoding='utf-8') == executed


def test_docs_check_names_a_cell_that_uses_a_name_doc_processing_never_defined(tmp_path):
    "tools/check_docs.py (run by `make test`) runs nbdev's doc processing: a cell with an import runs there, a plain one does not."
    import nbformat
    def nb(*cells):
        v4 = nbformat.v4
        return v4.new_notebook(cells=[v4.new_code_cell('#| export\ndef one(): return 1')] + [v4.new_code_cell(c) for c in cells],
                               metadata={'kernelspec': {'name': 'python3', 'language': 'python', 'display_name': 'python3'}})
    nbformat.write(nb('x = one()', 'import math\nassert x == 1'), tmp_path / 'bad.ipynb')     # x comes from a cell that is not run
    nbformat.write(nb('import math', 'x = one()\nassert x == 1'), tmp_path / 'good.ipynb')   # the nbdev FAQ's fix: imports alone
    r = subprocess.run([sys.executable, 'tools/check_docs.py', str(tmp_path / 'bad.ipynb'), str(tmp_path / 'good.ipynb')],
                       cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "bad.ipynb: NameError: name 'x' is not defined" in r.stderr, r.stderr
    assert 'good.ipynb' not in r.stderr


def test_notebooks_name_the_kernel_the_readme_sets_up():
    "Every notebook, papermill call and the README's recipe agree on one kernel: `python3` of the venv's own Jupyter."
    import json
    names = {p.name: json.loads(p.read_text(encoding='utf-8'))['metadata']['kernelspec']['name'] for p in (root / 'nbs').glob('*.ipynb')}
    assert set(names.values()) == {'python3'}, names
    calls = re.findall(r"kernel_name=['\"](\w+)", ''.join(p.read_text(encoding='utf-8') for p in (root / 'hier_repro').glob('*.py')))
    assert calls and set(calls) == {'python3'}, calls
    readme = (root / 'README.md').read_text(encoding='utf-8')
    assert '.venv/bin/jupyter lab' in readme and not re.search(r'ipykernel install .*--name (?!python3\b)', readme)


def test_import_graph_has_no_cycle_and_no_private_names():
    "The package's modules import downwards only (no cycle) and never use another module's private names."
    import ast, import_graph
    lib = root / 'hier_repro'
    g = import_graph.import_graph(lib)
    assert import_graph.cycles(g) == [], import_graph.cycles(g)
    fl = import_graph.floors(g)
    assert fl['core'] == 1 and fl['experiments'] < min(fl['proxydr'], fl['avgk'], fl['dmlcrc']) < fl['report'] < fl['cli']
    private = []
    for p in lib.glob('*.py'):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or '').startswith('hier_repro')):
                private += [(p.stem, node.module, a.name) for a in node.names if a.name.startswith('_') and a.name != '__version__']
    assert private == [], private


def test_import_graph_finds_a_cycle(tmp_path):
    "The checker itself: a two-module circle is reported."
    import import_graph
    (tmp_path / 'a.py').write_text('from .b import x\n'); (tmp_path / 'b.py').write_text('def f():\n    from hier_repro.a import y\n')
    assert import_graph.cycles(import_graph.import_graph(tmp_path)) == [['a', 'b', 'a']]


def test_committed_tables_are_those_of_the_committed_results(tmp_path):
    "`hier-repro report` on results/ rewrites every committed table (.md/.csv/.tex) byte for byte: figures/ are the records' tables."
    from hier_repro.report import make_report
    make_report(root / 'results', tmp_path, verbose=False)
    tables = sorted(p.name for p in (root / 'figures').iterdir() if p.suffix in ('.md', '.csv', '.tex'))
    assert tables and {p.name for p in tmp_path.iterdir()} >= set(tables)
    differ = [n for n in tables if (root / 'figures' / n).read_bytes() != (tmp_path / n).read_bytes()]
    if differ:
        import difflib
        first = differ[0]
        diff = '\n'.join(list(difflib.unified_diff((root / 'figures' / first).read_text().splitlines(), (tmp_path / first).read_text().splitlines(), lineterm=''))[:30])
        pytest.fail(f'run `make report` to regenerate {differ}; {first}:\n{diff}')


def test_readme_takes_the_verdicts_and_links_the_full_tables(tmp_path, monkeypatch):
    "The index notebook's `<!-- VERDICTS -->` cell becomes figures/VERDICTS.md, or a line saying how to make it; RESULTS.md is linked, not inlined."
    import nbformat
    v4 = nbformat.v4
    nbformat.write(v4.new_notebook(cells=[v4.new_markdown_cell('# x'), v4.new_markdown_cell('<!-- VERDICTS -->')]), tmp_path / 'index.ipynb')
    (tmp_path / 'figures').mkdir(); monkeypatch.setattr(make_readme, 'root', tmp_path)
    assert make_readme.render(tmp_path / 'index.ipynb').endswith('# x\n\n' + make_readme.NO_VERDICTS + '\n')
    (tmp_path / 'figures' / 'VERDICTS.md').write_text('| claim | verdict |\n|---|---|\n| C1 | holds |\n')
    text = make_readme.render(tmp_path / 'index.ipynb')
    assert '| C1 | holds |' in text and '<!-- VERDICTS -->' not in text
    readme = (root / 'README.md').read_text(encoding='utf-8')
    assert '(figures/RESULTS.md)' in readme and 'generated by hier_repro.report.make_report' not in readme
    assert readme.index('## Verdicts') < readme.index('## On your own data') < readme.index('## Full results')
