"The report on a small synthetic results folder: every table and figure is produced, twice identically; empty results say so."
import hashlib, json
from pathlib import Path
import numpy as np
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
    assert 't_p' in c1 and 'wilcoxon_p' in c1
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
