"DML-CRC end to end: the experiment notebook through papermill, and the contents of the records of every method."
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT

VENV_BIN = Path(sys.executable).parent
REGIME = 'fashion_mnist_small__efficientnet_lite0-frozen'


def _papermill(nb, out, **params):
    args = [str(VENV_BIN / 'papermill'), str(ROOT / 'nbs' / nb), str(out), '-k', 'python3', '--log-level', 'WARNING', '--cwd', str(ROOT / 'nbs')]
    for k, v in params.items(): args += ['-p', k, str(v)]
    env = {k: v for k, v in os.environ.items() if k != 'IN_TEST'}
    r = subprocess.run(args, capture_output=True, text=True, env={**env, 'OMP_WAIT_POLICY': 'PASSIVE'})
    assert r.returncode == 0, r.stderr[-3000:]


def test_papermill_exp_dmlcrc(tmp_path):
    "papermill in the test profile writes a DML-CRC record with both prediction rules, per-class accuracy and the hierarchy measures."
    _papermill('exp_dmlcrc.ipynb', tmp_path / 'out.ipynb', profile='test', results_dir=tmp_path)
    rec = json.loads((tmp_path / 'dmlcrc' / REGIME / 'dmlcrc__seed1.json').read_text())
    m = rec['metrics']
    assert m['rule'] == 'residual' and m['top1'] == m['residual']['top1']
    for rule in ('residual', 'softmax'):
        for k in ('top1', 'top5', 'macro_top1', 'ahc', 'ahd_at_5', 'hp_at_5', 'acc_l1', 'acc_l2'):
            assert m[rule][k] is not None and np.isfinite(m[rule][k]), (rule, k)
        assert len(m[rule]['per_class']) == 10
    assert 'ahs_at_50' in m['residual'] and 'map_at_r' in m['residual']   # retrieval in the learned metric
    assert rec['config']['profile'] == 'test' and rec['info']['git_sha'] and len(rec['fit']['history']) == 1
    assert set(rec['fit']['terms'][0]) == {'ce', 'collab'} and rec['method'] == 'dmlcrc'
    assert (tmp_path / 'out.ipynb').exists()


@pytest.fixture(scope='module')
def records(tmp_path_factory):
    "One test-profile record per method (seed 1), plus seed 2 of the closed forms."
    from hier_repro.dmlcrc import grid_dmlcrc
    d = tmp_path_factory.mktemp('dmlcrc')
    recs = grid_dmlcrc(seeds='1', profile='test', results_dir=d, progress=False)
    recs += grid_dmlcrc(seeds='2', method='crc,procrc', profile='test', results_dir=d, progress=False)
    return d, {(r['method'], r['seed']): r for r in recs}


def test_every_method_writes_its_record(records):
    d, recs = records
    from hier_repro.dmlcrc import DMLCRC_METHODS
    for meth in DMLCRC_METHODS:
        assert (d / 'dmlcrc' / REGIME / f'{meth}__seed1.json').exists(), meth
        r = recs[(meth, 1)]
        assert r['experiment'] == 'dmlcrc' and r['regime'] == REGIME and r['dataset']['sizes'] == {'train': 320, 'val': 160, 'test': 320}
        pc = np.array(r['metrics']['residual']['per_class'], dtype=float)
        assert np.isclose(np.nanmean(pc), r['metrics']['residual']['macro_top1'], atol=1e-3)


def test_rules_and_metric(records):
    "Own rule per method; L moves only when learned; the closed forms train nothing and do not depend on the seed."
    _, recs = records
    assert recs[('softmax', 1)]['metrics']['rule'] == 'softmax'
    assert recs[('softmax', 1)]['metrics']['top1'] == recs[('softmax', 1)]['metrics']['softmax']['top1']
    for meth in ('dmlcrc', 'dmlprocrc'): assert recs[(meth, 1)]['metrics']['metric']['l_minus_identity'] > 0
    for meth in ('collab_identity', 'softmax'): assert recs[(meth, 1)]['metrics']['metric']['l_minus_identity'] == 0
    for meth in ('crc', 'procrc'):
        r = recs[(meth, 1)]
        assert r['fit'] is None and 'softmax' not in r['metrics'] and r['config']['frozen']
        assert r['metrics'] == recs[(meth, 2)]['metrics']
    # same seed, same initial weights: one epoch of CE alone vs CE + collaborative gives different networks
    assert recs[('softmax', 1)]['fit']['history'][0]['train_loss'] < recs[('dmlcrc', 1)]['fit']['history'][0]['train_loss']


def test_crc_baseline_matches_numpy(records):
    "The CRC baseline's accuracy equals a direct numpy implementation (ridge code per query, class residuals) on the same features."
    _, recs = records
    from hier_repro.experiments import prepare_data
    from hier_repro.experiments import resolve_config
    data = prepare_data(resolve_config('dmlcrc', method='crc', profile='test'))
    X = data.train.x.double().numpy(); X /= np.linalg.norm(X, axis=1, keepdims=True)
    Q = data.test.x.double().numpy(); Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    ytr, yte, lam = data.train.y.numpy(), data.test.y.numpy(), 1e-2
    A = np.linalg.solve(X @ X.T + lam * np.eye(len(X)), X @ Q.T).T           # n_test x n_train codes
    r = np.stack([((Q - A[:, ytr == c] @ X[ytr == c]) ** 2).sum(1) for c in range(data.n_classes)], 1)
    acc = (r.argmin(1) == yte).mean()
    assert abs(acc - recs[('crc', 1)]['metrics']['top1']) < 1e-9


def test_options_name_the_record_and_dictionaries_run(tmp_path):
    from hier_repro.dmlcrc import run_dmlcrc
    r = run_dmlcrc(method='dmlcrc', m=4, w=0.5, profile='test', results_dir=tmp_path)
    assert r['config_name'] == 'dmlcrc-m4-w0.5' and (tmp_path / 'dmlcrc' / REGIME / 'dmlcrc-m4-w0.5__seed1.json').exists()
    assert run_dmlcrc(method='dmlcrc', m=4, w=0.5, profile='test', results_dir=tmp_path)['info'] == r['info']   # reused
    for dictionary in ('full', 'batch'):
        r = run_dmlcrc(method='dmlprocrc', dictionary=dictionary, profile='test', results_dir=tmp_path)
        assert r['config_name'] == f'dmlprocrc-dict{dictionary}' and np.isfinite(r['metrics']['top1'])
    r = run_dmlcrc(method='collab_identity', learn_tau=True, profile='test', results_dir=tmp_path)
    assert r['metrics']['metric']['tau'] != 1.0 and r['metrics']['metric']['l_minus_identity'] == 0


def test_bad_inputs():
    from hier_repro.dmlcrc import run_dmlcrc, grid_dmlcrc
    with pytest.raises(ValueError, match='known: dmlcrc, dmlprocrc, collab_identity, softmax, crc, procrc'): run_dmlcrc(method='lmnn', profile='test')
    with pytest.raises(ValueError, match='unknown DML-CRC method'): grid_dmlcrc(seeds='1', method='dmlcrc,svm', profile='test')
    with pytest.raises(KeyError, match='unknown config keys'): run_dmlcrc(memory=8, profile='test')
