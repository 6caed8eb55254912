"The report on a small synthetic results folder: every table and figure is produced, twice identically; empty results say so."
import hashlib, json
from pathlib import Path
import numpy as np
import pandas as pd
import pytest

from hier_repro.hierarchy import load_hierarchy
from hier_repro.report import make_report
from hier_repro.tables import load_results
from hier_repro.proxydr import PROXYDR_ORDER

h = load_hierarchy('fashion_mnist'); C = h.n_classes
iu = np.triu_indices(C, 1); TREE = h.distance_matrix()[iu].tolist()


def _measures(rng, good):
    m = {k: float(rng.uniform(0.3, 0.9) + 0.05 * good) for k in ('top1', 'top5', 'classwise_rho', 'elementwise_rho', 'hp_at_5',
                                                                    'hs_at_250', 'ahs_at_250', 'map_at_r', 'p_at_1', 'r_precision')}
    m |= {k: float(rng.uniform(1, 3) - 0.2 * good) for k in ('ahc', 'ahd_at_5')} | {'norm_rf': float(rng.uniform(0, 1))}
    m['rep_dist'] = (np.asarray(TREE) / 6 + rng.normal(0, 0.1, len(TREE))).round(4).tolist()
    return m


def make_synthetic_results(root: Path, seeds=(1, 2, 3)):
    "Records shaped like run_proxydr / run_random_cnn output, for one regime."
    rng = np.random.default_rng(0)
    ds = dict(name='toy', n_classes=C, classes=h.classes, tree_dist=TREE)
    for cfg in PROXYDR_ORDER:
        for s in seeds:
            good = 'proxydr' in cfg
            rec = dict(experiment='proxydr', config_name=cfg, regime='toy__net-frozen', seed=s, config=dict(model=cfg.split('-')[0]),
                       dataset=ds, metrics=dict(proxy=_measures(rng, good), proto=_measures(rng, good), hs_curve=np.linspace(0.9, 0.8, 250).tolist()),
                       wall_s=1.0, info=dict(git_sha='abc', device_name='synthetic'))
            p = root / 'proxydr' / 'toy__net-frozen' / f'{cfg}__seed{s}.json'; p.parent.mkdir(parents=True, exist_ok=True); p.write_text(json.dumps(rec))
    for s in seeds:
        t = {st: dict(observed=0.4, chance_mean=0.0, chance_sd=0.1, z=4.0, p=0.001, n_permutations=1000) for st in ('classwise', 'elementwise')}
        rec = dict(experiment='random_cnn', config_name='smallcnn', seed=s, config={}, dataset=ds, metrics=t | {'rep_dist': _measures(rng, 0)['rep_dist']})
        p = root / 'random_cnn' / 'toy' / f'smallcnn__seed{s}.json'; p.parent.mkdir(parents=True, exist_ok=True); p.write_text(json.dumps(rec))


def _digest(d: Path) -> dict:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_report_on_synthetic_results(tmp_path):
    res, fig = tmp_path / 'results', tmp_path / 'figures'
    make_synthetic_results(res)
    assert len(load_results(res)) == 14 * 3 + 3
    summary = make_report(res, fig, verbose=False)
    names = {p.name for p in fig.iterdir()}
    for stem in ('proxydr_toy__net-frozen_proxy', 'proxydr_toy__net-frozen_proto', 'proxydr_toy__net-frozen_claim_c1',
                 'proxydr_toy__net-frozen_claim_c2', 'random_cnn'):
        assert {f'{stem}.md', f'{stem}.csv', f'{stem}.tex'} <= names, stem
    for stem in ('proxydr_toy__net-frozen_hs_curves', 'proxydr_toy__net-frozen_dendrogram', 'proxydr_toy__net-frozen_distance_vs_tree',
                 'random_cnn_permutation'):
        assert {f'{stem}.png', f'{stem}.pdf'} <= names, stem
    text = summary.read_text()
    assert '**' in text and '± ' in text and 'C1 standard: ProxyDR > NormFace' in text and 'figures/random_cnn_permutation.png' in text
    c1 = (fig / 'proxydr_toy__net-frozen_claim_c1.csv').read_text()
    assert 't_p' in c1 and 'wilcoxon_p' in c1 and 'p_adj' in c1 and 'sign_flip_p' in c1
    c2 = pd.read_csv(fig / 'proxydr_toy__net-frozen_claim_c2.csv')
    assert (c2.loc[c2['measure'] == 'proxy.hp_at_5', 'holds'] == 'n/a (measure degenerate)').all()   # the Fashion tree: HP@5 = 1 always
    v = pd.read_csv(fig / 'VERDICTS.csv')
    assert v[['claim', 'regime']].values.tolist() == [['C1', 'toy__net-frozen'], ['C2', 'toy__net-frozen'], ['C3', 'toy']]
    assert v.loc[1, 'rows_hold'].endswith('of 24')                                     # 30 C2 rows less the 6 degenerate ones
    assert '### Verdicts' in (fig / 'VERDICTS.md').read_text()
    from hier_repro.tables import MEASURE_NAMES
    for md in fig.glob('*.md'):   # a reader's table names its measures (with the better direction); the CSV keeps the ids
        for line in md.read_text().splitlines():
            if line.startswith('| '): assert not set(line.split(' | ')) & set(MEASURE_NAMES), (md.name, line)
    assert '| AHD@5 ↓ |' in (fig / 'proxydr_toy__net-frozen_proxy.md').read_text()
    assert 'ahd_at_5_mean' in (fig / 'proxydr_toy__net-frozen_proxy.csv').read_text()
    first = _digest(fig)
    make_report(res, fig, verbose=False)
    assert _digest(fig) == first          # running it twice changes nothing


def test_report_without_results_is_an_error_and_overwrites_nothing(tmp_path):
    "A results folder that does not exist (a mistyped --results-dir) or holds no record stops the report before any figure is written."
    (tmp_path / 'figures').mkdir(); (tmp_path / 'figures' / 'keep.md').write_text('mine')
    for res in (tmp_path / 'nonexistent', tmp_path / 'figures'):
        with pytest.raises(FileNotFoundError, match='no result records under'): make_report(res, tmp_path / 'figures', verbose=False)
    assert [p.name for p in (tmp_path / 'figures').iterdir()] == ['keep.md']


def test_section_without_records_keeps_its_files(tmp_path):
    "Only the sections that have records are rewritten; the others say what to run."
    res, fig = tmp_path / 'results', tmp_path / 'figures'
    make_synthetic_results(res)
    fig.mkdir(); (fig / 'dmlcrc_top1.md').write_text('earlier table')
    text = make_report(res, fig, verbose=False).read_text()
    assert (fig / 'dmlcrc_top1.md').read_text() == 'earlier table' and 'run `hier-repro grid dmlcrc`' in text


def test_reproduce_shows_what_each_notebook_does(tmp_path, capsys, monkeypatch):
    "`reproduce` (what `make reproduce` runs) executes the notebooks with a NotebookLog: a line per code cell and the lines it prints, after its name; no tables."
    from hier_repro.report import reproduce
    monkeypatch.setenv('HIER_REPRO_RUNS', str(tmp_path / 'runs'))   # the kernel inherits it: locks and checkpoints stay in tmp_path
    reproduce(plan=[('exp_random_cnn', dict(profile='test', seeds='1'))], jobs=1, allow_dirty=True,
              results_dir=tmp_path / 'results', figures_dir=tmp_path / 'figures', out_dir=tmp_path / 'executed')
    out = capsys.readouterr().out.splitlines()
    nb = [l for l in out if l.startswith('[exp_random_cnn] ')]
    assert any(l.startswith('[exp_random_cnn] cell ') and 'parameters profile = "test"; seeds = "1"' in l for l in nb), out
    assert any(l.startswith('[exp_random_cnn] cell ') and l.endswith('records = grid_random_cnn(notebook_seeds(seeds), **cfg)') for l in nb), out
    assert any(l.startswith('[exp_random_cnn] [random_cnn] fashion_mnist_small smallcnn seed 1: classwise rho') for l in nb), out   # its own log line
    assert any(l.startswith('[reproduce] notebook exp_random_cnn executed in') for l in out), out
    assert len(nb) < 20 and not any('chance_mean' in l for l in out), out   # no table dumped into the log
    assert (tmp_path / 'executed' / 'exp_random_cnn.ipynb').exists() and (tmp_path / 'figures' / 'RESULTS.md').exists()


def test_verdicts_pick_up_a_new_regime(tmp_path):
    "A new results folder (another backbone / training) gets its own verdict rows, and a differing verdict its sentence."
    res, fig = tmp_path / 'results', tmp_path / 'figures'
    make_synthetic_results(res)
    for f in (res / 'proxydr' / 'toy__net-frozen').glob('*.json'):   # the same runs again under a second regime, ProxyDR far ahead
        rec = json.loads(f.read_text()); rec['regime'] = 'toy__cnn-scratch'
        if 'proxydr' in rec['config_name']: rec['metrics']['proxy']['classwise_rho'] = 2.0 + 0.01 * rec['seed']
        p = res / 'proxydr' / 'toy__cnn-scratch' / f.name; p.parent.mkdir(parents=True, exist_ok=True); p.write_text(json.dumps(rec))
    make_report(res, fig, verbose=False)
    v = pd.read_csv(fig / 'VERDICTS.csv').set_index(['claim', 'regime'])
    assert v.loc[('C1', 'toy__cnn-scratch'), 'verdict'] == 'holds' and ('C1', 'toy__net-frozen') in v.index
    md = (fig / 'VERDICTS.md').read_text()
    from hier_repro.tables import regime_title
    assert v.loc[('C1', 'toy__net-frozen'), 'verdict'] != 'holds', v   # the synthetic frozen regime has C1 rows that fail: the verdicts differ
    assert 'C1 holds on toy' in md and 'cnn trained from scratch; it does not hold on toy' in md, md
