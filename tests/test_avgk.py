"Average-K experiments (hier_repro.avgk): exp_avgk through papermill, record contents, shared trainings, the claims, the CLI."
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ROOT
from hier_repro.tables import load_records
from hier_repro.avgk import (run_avgk, grid_avgk, avgk_frame, avgk_claims, compare_avgk, class_frequency_bins, avgk_measures,
                             FREQ_BINS)

VENV_BIN = Path(sys.executable).parent
REGIME = 'fashion_mnist_small__efficientnet_lite0-frozen'
HEAD_KEYS = {'K', 'threshold', 'threshold_prob', 'val_avgk_acc', 'val_mean_set_size', 'avgk_acc', 'avgk_acc_macro', 'top1_acc',
             'topk_acc', 'topk_acc_macro', 'mean_set_size', 'empty_fraction', 'set_size_hist', 'avgk_acc_per_class', 'avgk_acc_at', 'by_bin'}


pytestmark = pytest.mark.usefixtures('one_thread')   # conftest: one torch thread for small tensors


def _check_record(rec, heads, K, n_test=320, n_train=320):
    assert rec['experiment'] == 'avgk' and rec['heads'] == heads and rec['primary_head'] == heads[0]
    for h in heads:
        m = rec['metrics'][h]
        assert HEAD_KEYS <= set(m), (h, HEAD_KEYS - set(m))
        assert m['val_mean_set_size'] == pytest.approx(K)           # n_val·K pairs above the validation-calibrated threshold
        assert sum(m['set_size_hist']) == n_test
        assert m['mean_set_size'] == pytest.approx(np.dot(np.arange(len(m['set_size_hist'])), m['set_size_hist']) / n_test)
        assert 0 <= m['avgk_acc'] <= 1 and 0 <= m['avgk_acc_macro'] <= 1 and m['top1_acc'] <= m['topk_acc']
        assert set(m['by_bin']) == set(FREQ_BINS) and sum(b['n_test'] for b in m['by_bin'].values()) == n_test
        assert m['avgk_acc'] == pytest.approx(sum(b['n_test'] * b['avgk_acc'] for b in m['by_bin'].values()) / n_test)
    b = rec['class_bins']
    assert sum(b['train_counts']) == n_train and len(b['bin_of_class']) == rec['dataset']['n_classes']
    assert b['count_range']['few'][1] <= b['count_range']['many'][0]


def test_papermill_exp_avgk(tmp_path):
    "The experiment notebook in the test profile writes a record with every measure for both heads of the two-head model."
    args = [str(VENV_BIN / 'papermill'), str(ROOT / 'nbs' / 'exp_avgk.ipynb'), str(tmp_path / 'out.ipynb'), '-k', 'python3',
            '--log-level', 'WARNING', '--cwd', str(ROOT / 'nbs'), '-p', 'profile', 'test', '-p', 'results_dir', str(tmp_path), '-p', 'K', '3',
            '-p', 'grid', 'True', '-p', 'seeds', '1-2']
    r = subprocess.run(args, capture_output=True, text=True, env={**os.environ, 'OMP_WAIT_POLICY': 'PASSIVE'})
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads((tmp_path / 'avgk' / REGIME / 'two_head-K3-p0__seed1.json').read_text())
    _check_record(rec, ['multilabel', 'softmax'], 3)
    assert rec['config']['profile'] == 'test' and len(rec['fit']['history']) == 1 and rec['info']['git_sha']
    # the grid of the test profile (two_head and ce at the given K, 2 seeds) ran, and the notebook showed the claims
    assert {p.name for p in (tmp_path / 'avgk' / REGIME).glob('*.json')} == {f'{m}-K3-p0__seed{s}.json' for m in ('two_head', 'ce') for s in (1, 2)}
    out = json.loads((tmp_path / 'out.ipynb').read_text())
    text = ''.join(''.join(o.get('text', '')) + ''.join(o.get('data', {}).get('text/plain', '')) + ''.join(o.get('data', {}).get('text/markdown', '')) for c in out['cells'] for o in c.get('outputs', []))
    assert 'A1 two_head > ce' in text and 'A3 gain(few) > gain(many)' in text


def test_noise_long_tail_record_and_bins(tmp_path):
    "Label noise and a long tail reach the data (description, training counts, bins); ROLE's record has its multi-label head only."
    cfg = dict(profile='test', backbone='smallcnn', pretrained=False, method='role', K=2, label_noise=0.5, long_tail=10,
               n_train=200, results_dir=tmp_path, run_dir=tmp_path / 'run')
    rec = run_avgk(cfg)
    assert rec['config_name'] == 'role-K2-p0.5-lt10' and rec['regime'] == 'fashion_mnist_small__smallcnn-frozen'
    _check_record(rec, ['multilabel'], 2, n_train=200)
    d = rec['dataset']['description']
    assert d['label_noise']['p'] == 0.5 and d['long_tail']['ratio'] == 10
    counts = np.array(rec['class_bins']['train_counts']); bins = np.array(rec['class_bins']['bin_of_class'])
    assert counts.max() >= 3 * counts.min()                     # long-tailed
    assert counts[bins == 0].max() <= counts[bins == 2].min()   # few below many
    assert (tmp_path / 'run' / 'last.pt').exists()
    st = torch.load(tmp_path / 'run' / 'last.pt', weights_only=True)
    assert st['model']['head.label_matrix.table.weight'].shape == (200, 10)   # ROLE's label matrix is checkpointed
    with pytest.raises(ValueError, match='number of classes'): run_avgk({**cfg, 'K': 10, 'force': True})


def test_k_free_methods_share_one_training(tmp_path):
    "CE's K=2 and K=3 records come from one training; two-head's K=3 retrains (its pseudo-labels use K)."
    base = dict(profile='test', results_dir=tmp_path, run_dir=tmp_path / 'ce')
    a, b = run_avgk(base, method='ce', K=2), run_avgk(base, method='ce', K=3)
    assert a['fit'] == b['fit'] and a['metrics']['softmax']['top1_acc'] == b['metrics']['softmax']['top1_acc']
    assert a['metrics']['softmax']['mean_set_size'] < b['metrics']['softmax']['mean_set_size']
    base['run_dir'] = tmp_path / 'th'
    c, d = run_avgk(base, method='two_head', K=2), run_avgk(base, method='two_head', K=3)
    assert c['fit']['history'][0]['train_loss'] != d['fit']['history'][0]['train_loss']
    again = run_avgk(base, method='two_head', K=3)                 # the record is reused
    assert again['info']['created'] == d['info']['created']


def test_measures_by_hand():
    "Average-K measures on scores whose sets can be written down."
    val = torch.tensor([[0.9, 0.8, 0.1], [0.7, 0.2, 0.6]]); vy = torch.tensor([0, 2])
    test = torch.tensor([[0.95, 0.9, 0.5], [0.1, 0.2, 0.3], [0.8, 0.7, 0.66]]); ty = torch.tensor([1, 2, 2])
    m = avgk_measures(val, vy, test, ty, K=1.5, bins=np.array([0, 1, 2]))
    assert m['threshold'] == pytest.approx(0.65)                   # 3rd and 4th largest validation scores: 0.7 and 0.6
    assert m['set_size_hist'] == [1, 0, 1, 1] and m['avgk_acc'] == pytest.approx(2 / 3)
    assert m['by_bin']['medium']['avgk_acc'] == 1 and m['by_bin']['many']['avgk_acc'] == 0.5 and m['by_bin']['few']['n_test'] == 0
    assert 'topk_acc' not in m                                     # K = 1.5 has no top-K
    bins, counts = class_frequency_bins([2, 2, 2, 0, 1, 1], 3)
    assert bins.tolist() == [0, 1, 2] and counts.tolist() == [1, 2, 3]


def _fake_frame():
    "Two-head gains over CE that grow with noise and are larger for rare classes; the other baselines lose."
    rows, rng = [], np.random.default_rng(0)
    for data, p in (('p0', 0.0), ('p0.5', 0.5)):
        for K in (2, 3):
            for seed in (1, 2, 3, 4):
                base = 0.8 + 0.01 * rng.standard_normal()
                for model, gain, few in (('ce', 0, 0), ('two_head', 0.01 + 0.05 * p, 0.04), ('an', -0.05, 0), ('two_head:softmax', 0.0, 0)):
                    g = gain + 0.002 * rng.standard_normal()
                    rows.append(dict(regime='r', data=data, label_noise=p, long_tail=0, K=float(K), model=model, seed=seed,
                                     avgk_acc=base + g, avgk_few=base + g + few, avgk_medium=base + g, avgk_many=base + g - few / 2))
    return pd.DataFrame(rows)


@pytest.mark.filterwarnings('ignore:Precision loss')
def test_claims_detect_gains():
    df = _fake_frame()
    cl = avgk_claims(df)
    a1 = cl['A1'].set_index('claim')
    assert a1.loc['A1 two_head > ce data=p0.5 K=2', 'holds'] == 'yes' and a1.loc['A1 two_head > ce (all K) data=p0', 'seeds'] == 4   # K averaged within each seed: n = seeds
    assert (cl['A2'].query("claim.str.contains('> an')", engine='python')['holds'] == 'yes').all()
    assert cl['A3_noise'].set_index('claim').loc['A3 gain(p0.5) > gain(p0)', 'holds'] == 'yes'
    # gain(few) - gain(many) is exactly 0.06 for every seed here: t undefined, the exact sign-flip test cannot reach 0.05 with 4 seeds
    assert cl['A3_bins'].set_index('claim').loc['A3 gain(few) > gain(many), p0', 'holds'] == 'undetermined (n too small)'
    tied = avgk_claims(df.assign(bins_distinct=False))['A3_bins']      # few and many with the same training counts: no test
    assert (tied['holds'] == 'n/a (bins tied)').all() and tied['p_adj'].isna().all()
    # the other direction does not hold
    rev = compare_avgk(df, 'ce', 'two_head', by=('data',))
    assert (rev['holds'] == 'no').all()


def test_cli_grid_avgk(tmp_path):
    exe = str(VENV_BIN / 'hier-repro')
    r = subprocess.run([exe, 'grid', 'avgk', '--profile', 'test', '--seeds', '1', '--method', 'wan', '--K', '2,3',
                        '--label-noise', '0,0.2', '--backbone', 'smallcnn', '--set', 'pretrained=false',   # random features: cheap to extract
                        '--results-dir', str(tmp_path)], capture_output=True, text=True,
                       env={**os.environ, 'OMP_WAIT_POLICY': 'PASSIVE', 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr[-2000:]
    names = sorted(p.name for p in (tmp_path / 'avgk' / 'fashion_mnist_small__smallcnn-frozen').glob('*.json'))
    assert names == ['wan-K2-p0.2__seed1.json', 'wan-K2-p0__seed1.json', 'wan-K3-p0.2__seed1.json', 'wan-K3-p0__seed1.json']
    fr = avgk_frame(r for _, r in load_records(tmp_path, 'avgk'))
    assert len(fr) == 4 and set(fr['data']) == {'p0', 'p0.2'}


def test_e2e_profile_selects_on_average_k_and_reports_the_last_epoch(tmp_path, monkeypatch):
    "The e2e profile end to end (tiny): a SmallCNN from scratch kept on the validation average-K accuracy, the last epoch reported beside it, noise that flips to another label and is redrawn by each seed; a finished training resumed gives the same last-epoch measures."
    monkeypatch.setenv('HIER_REPRO_RUNS', str(tmp_path / 'runs'))
    kw = dict(method='two_head', K=2, label_noise=0.5, profile='e2e', epochs=2, n_train=400, n_val=200, n_test=200,
              results_dir=str(tmp_path / 'res'), allow_dirty=True, device='cpu')
    r1 = run_avgk(seed=1, **kw)
    assert r1['regime'] == 'fashion_mnist_small__smallcnn-scratch' and r1['config']['selection'] == 'rule'
    assert r1['fit']['selection'] == 'validation average-K accuracy of the primary head'
    h = r1['fit']['history']
    assert all('val_top1' in e for e in h) and r1['fit']['best_val_acc'] == max(e['val_acc'] for e in h)
    assert set(r1['metrics_last']) == set(r1['metrics']) == {'multilabel', 'softmax'}
    noise = r1['dataset']['description']['label_noise']
    assert noise['mode'] == 'other' and noise['changed_fraction'] > 0.35          # p = 0.5 of the labels, less the classes alone in their group
    r2 = run_avgk(seed=2, **kw)
    assert r2['dataset']['description']['label_noise']['changed'] != noise['changed']   # the seed redraws the noise
    again = run_avgk(seed=1, force=True, retrain=False, **kw)                       # resumes the finished training: no epoch runs again
    assert again['metrics_last'] == r1['metrics_last'] and again['metrics'] == r1['metrics']
    df = avgk_frame([r1, r2], last=True)
    assert set(df['epoch']) == {'best', 'last'} and len(set(df['model'])) == 4 and all(m.startswith('two_head-e2__h') for m in df['model'])   # one name for both seeds
