"End-to-end runs: ProxyDR through papermill, exact resume of a real run, the CLI, the random-CNN claim."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch

from conftest import ROOT

VENV_BIN = Path(sys.executable).parent


def _papermill(nb, out, **params):
    args = [str(VENV_BIN / 'papermill'), str(ROOT / 'nbs' / nb), str(out), '-k', 'python3', '--log-level', 'WARNING', '--cwd', str(ROOT / 'nbs')]
    for k, v in params.items(): args += ['-p', k, str(v)]
    r = subprocess.run(args, capture_output=True, text=True, env={**os.environ, 'OMP_WAIT_POLICY': 'PASSIVE'})
    assert r.returncode == 0, r.stderr[-3000:]


def test_papermill_exp_proxydr(tmp_path):
    "papermill with small parameters writes a record with every measure for proxies and class means."
    _papermill('exp_proxydr.ipynb', tmp_path / 'out.ipynb', profile='test', option='ema', results_dir=tmp_path)
    f = tmp_path / 'proxydr' / 'fashion_mnist_small__efficientnet_lite0-frozen' / 'proxydr-ema__seed1.json'
    rec = json.loads(f.read_text())
    for rep in ('proxy', 'proto'):
        m = rec['metrics'][rep]
        for k in ('top1', 'top5', 'classwise_rho', 'elementwise_rho', 'norm_rf', 'ahc', 'ahd_at_5', 'hp_at_5', 'ahs_at_50', 'map_at_r'):
            assert k in m and m[k] is not None, (rep, k)
    assert rec['config']['profile'] == 'test' and rec['info']['git_sha'] and len(rec['fit']['history']) == 1
    assert (tmp_path / 'out.ipynb').exists()


def test_interrupted_run_resumes_to_identical_metrics(tmp_path):
    "A small CNN trained from scratch: interrupted after 1 of 2 epochs and resumed, it ends with the same record as a straight run."
    from hier_repro.proxydr import run_proxydr
    cfg = dict(profile='test', backbone='smallcnn', frozen=False, pretrained=False, width=8, epochs=2, model='normface',
               option='ema_dynamic', n_train=256, n_val=128, n_test=128, R=20)
    straight = run_proxydr(cfg, results_dir=tmp_path / 'a', run_dir=tmp_path / 'run_a')
    # interrupt: the first call stops after one epoch (fit's stop_after), leaving only a checkpoint
    import hier_repro.training as T
    orig = T.fit
    def fit_one_epoch(*a, **kw): return orig(*a, **{**kw, 'stop_after': 1})
    import hier_repro.experiments as E
    E.fit = fit_one_epoch
    try:
        with pytest.raises(RuntimeError, match='resume'): run_proxydr(cfg, results_dir=tmp_path / 'b', run_dir=tmp_path / 'run_b')
    finally: E.fit = orig
    assert (tmp_path / 'run_b' / 'last.pt').exists() and not list((tmp_path / 'b').rglob('*.json'))
    resumed = run_proxydr(cfg, results_dir=tmp_path / 'b', run_dir=tmp_path / 'run_b')
    assert resumed['fit']['history'][0]['train_loss'] == straight['fit']['history'][0]['train_loss']
    assert [h['val_acc'] for h in resumed['fit']['history']] == [h['val_acc'] for h in straight['fit']['history']]
    for rep in ('proxy', 'proto'):
        for k, v in straight['metrics'][rep].items():
            assert resumed['metrics'][rep][k] == pytest.approx(v, abs=1e-9), (rep, k)


def test_existing_record_is_reused(tmp_path):
    from hier_repro.proxydr import run_proxydr
    a = run_proxydr(profile='test', model='softmax', results_dir=tmp_path, run_dir=tmp_path / 'r')
    b = run_proxydr(profile='test', model='softmax', results_dir=tmp_path, run_dir=tmp_path / 'r2')
    assert a['info']['created'] == b['info']['created'] and not (tmp_path / 'r2').exists()


def test_cli_run_and_bad_input(tmp_path):
    exe = str(VENV_BIN / 'hier-repro')
    r = subprocess.run([exe, 'run', 'proxydr', '--profile', 'test', '--model', 'corr', '--option', 'mds', '--results-dir', str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])['config_name'] == 'corr-mds'
    r = subprocess.run([exe, 'run', 'proxydr', '--profile', 'test', '--set', 'lr_rate=1'], capture_output=True, text=True)
    assert r.returncode != 0 and 'unknown config keys' in r.stderr
    r = subprocess.run([exe, 'run', 'proxydr', '--dataset', 'imagenet'], capture_output=True, text=True)
    assert r.returncode != 0 and 'known:' in r.stderr


def test_random_cnn_beats_chance_on_embedded_default(tmp_path):
    "C3 on the embedded default: an untrained small CNN's class means correlate with the tree above the permutation null."
    from hier_repro.proxydr import run_random_cnn
    r = run_random_cnn(profile='test', n_test=1000, n_permutations=500, results_dir=tmp_path)
    t = r['metrics']['classwise']
    assert t['observed'] > t['chance_mean'] and t['n_permutations'] == 200   # the test profile caps permutations at 200


def _cli(*args, **kw):
    env = {**os.environ, 'OMP_WAIT_POLICY': 'PASSIVE', 'OMP_NUM_THREADS': '1'}
    return subprocess.Popen([str(VENV_BIN / 'hier-repro'), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)


def test_a_run_is_its_whole_config(tmp_path):
    "Another setting gives another record (the first is never returned for it); a record of another config is refused, naming the keys."
    base = ['run', 'proxydr', '--profile', 'test', '--model', 'softmax', '--results-dir', str(tmp_path)]
    outs = []
    for extra in (['--set', 'lr=0.5'], ['--set', 'lr=0.001', '--epochs', '2']):
        out, err = _cli(*base, *extra).communicate()
        assert 'Traceback' not in err, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    recs = [json.loads(f.read_text()) for f in sorted((tmp_path / 'proxydr').rglob('*.json'))]
    assert len(recs) == 2 and outs[0]['record_name'] != outs[1]['record_name'] and not outs[1]['reused']
    got = {r['record_name']: r for r in recs}[outs[1]['record_name']]
    assert got['config']['lr'] == 0.001 and got['config']['epochs'] == 2 and len(got['fit']['history']) == 2
    # a record at the default name that holds another config: refused with the differing key, then --force retrains it
    from hier_repro.proxydr import run_proxydr
    from hier_repro.experiments import ConfigMismatch, config_hash
    rec = run_proxydr(profile='test', model='softmax', results_dir=tmp_path)
    f = Path(rec['reused_from']['path']) if 'reused_from' in rec else next((tmp_path / 'proxydr').rglob('softmax-standard__seed1.json'))
    stored = json.loads(f.read_text()); stored['config']['emb_dim'] = 64; stored.pop('config_hash'); f.write_text(json.dumps(stored))
    with pytest.raises(ConfigMismatch, match='emb_dim: stored 64, asked 128'): run_proxydr(profile='test', model='softmax', results_dir=tmp_path)
    again = run_proxydr(profile='test', model='softmax', results_dir=tmp_path, force=True)
    assert again['config']['emb_dim'] == 128 and again['config_hash'] == config_hash(again['config']) and 'reused_from' not in again


def test_two_concurrent_runs_of_one_config(tmp_path):
    "Two processes asked for the same run at once: one trains, the other waits and reuses its record; neither crashes."
    args = ['run', 'proxydr', '--profile', 'test', '--model', 'normface', '--backbone', 'smallcnn', '--set', 'pretrained=false',
            '--set', 'frozen=false', '--width', '8', '--epochs', '2', '--results-dir', str(tmp_path)]
    procs = [_cli(*args) for _ in range(2)]
    outs = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    reused = [json.loads(o.strip().splitlines()[-1])['reused'] for o, _ in outs]
    assert sorted(reused) == [False, True]
    assert len(list((tmp_path / 'proxydr').rglob('*.json'))) == 1 and not list(tmp_path.rglob('*.tmp'))


def test_forced_grid_trains_each_shared_training_once(tmp_path, capsys):
    "A forced Average-K grid: CE (whose training does not depend on K) trains once for K = 2 and 3, the two-head loss once per K."
    from hier_repro.avgk import grid_avgk
    trainings = lambda: capsys.readouterr().out.count('epoch 1/1 ')   # fit prints one line per trained epoch (1 epoch in the test profile)
    recs = grid_avgk(seeds='1', method='ce,two_head', K='2,3', profile='test', results_dir=tmp_path, progress=False)
    assert len(recs) == 4 and trainings() == 3
    recs2 = grid_avgk(seeds='1', method='ce,two_head', K='2,3', profile='test', results_dir=tmp_path, progress=False, force=True)
    assert trainings() == 3                              # forced: ce retrains once (K = 3 resumes it), two_head once per K
    for a, b in zip(recs, recs2):
        assert (a['method'], a['K']) == (b['method'], b['K']) and a['metrics'] == b['metrics']


def test_parallel_grid_equals_sequential(tmp_path):
    "run_many with two worker processes writes the records one process writes (same metrics), in the input order."
    from hier_repro.experiments import grid
    import hier_repro.proxydr   # registers the spec
    seq = grid('proxydr', seeds='1-2', model='normface,proxydr', option='standard', profile='test', results_dir=tmp_path / 'a', progress=False)
    par = grid('proxydr', seeds='1-2', model='normface,proxydr', option='standard', profile='test', results_dir=tmp_path / 'b', progress=False, jobs=2)
    assert [(r['record_name'], r['seed']) for r in par] == [(r['record_name'], r['seed']) for r in seq]
    for a, b in zip(seq, par):
        for rep in ('proxy', 'proto'):
            for k, v in a['metrics'][rep].items():
                assert b['metrics'][rep][k] == pytest.approx(v, rel=1e-4, abs=1e-6), (a['record_name'], rep, k)


def test_partial_regime_trains_the_top_on_cached_views(tmp_path, monkeypatch, one_thread):
    "The e2e profile on photos (a synthetic CUB in the official layout): each paper's run trains Lite0's last block on maps of cached views."
    from test_gpu_check import synthetic_cub
    from hier_repro.experiments import run, resolve_config, prepare_data
    import hier_repro.avgk, hier_repro.dmlcrc, hier_repro.proxydr
    monkeypatch.setenv('HIER_REPRO_CACHE', str(tmp_path / 'cache')); monkeypatch.setenv('HIER_REPRO_RUNS', str(tmp_path / 'runs'))
    root = synthetic_cub(tmp_path / 'CUB_200_2011')
    base = dict(dataset='cub', root=str(root), train_flag=0, profile='e2e', epochs=2, views=3, image_size=32,
                results_dir=str(tmp_path / 'results'), run_dir=None, allow_dirty=True)
    data = prepare_data(resolve_config('avgk', method='ce', **base))
    assert type(data.train).__name__ == 'ViewSplit' and data.train.x.shape[1:3] == (3, 192) and data.val.x.ndim == 4
    assert data.description['features']['extracted_now'] == 3 * len(data.train) + len(data.val) + len(data.test)
    for exp, kw in [('avgk', dict(method='two_head', K=2)), ('dmlcrc', dict(method='dmlcrc', m=2)), ('proxydr', dict(model='proxydr', option='standard'))]:
        rec = run(exp, {**base, **kw})
        assert rec['regime'] == 'cub__efficientnet_lite0-partial', rec['regime']
        assert rec['config']['trainable'] == 1 and rec['config']['views'] == 3 and rec['config']['augment'] == 'affine'
        feats = rec['dataset']['description']['features']
        assert feats['views'] == 3 and feats['extracted_now'] == 0 and feats['backbone'] == 'efficientnet_lite0'   # the maps are reused
        assert len(rec['fit']['history']) == 2 and all(np.isfinite(h['train_loss']) for h in rec['fit']['history'])
    with pytest.raises(ValueError, match='set frozen=False and pretrained=True'):
        resolve_config('avgk', **{**base, 'frozen': True})
