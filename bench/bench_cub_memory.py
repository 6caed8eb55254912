"""Peak memory and time of preparing the CUB subset for the frozen regime: decoded at 224 px then resized (before) vs decoded at
the 128 px the features use (now). Each case runs in a fresh process with an empty cache folder (decode + feature extraction).

    python bench/bench_cub_memory.py [CUB root]     # default: ../shared/data/cub/CUB_200_2011_subset100
"""
import json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(case: str, root: str):
    import hier_repro.report  # noqa: F401
    from hier_repro.experiments import get_experiment, resolve_config, prepare_data
    from hier_repro.datasets import get_dataset
    from hier_repro.models import cached_features
    cfg = resolve_config(get_experiment('proxydr'), dict(dataset='cub', root=root, train_flag=0, allow_dirty=True))
    t = time.perf_counter()
    if case == 'now': ds = prepare_data(cfg)
    else:   # what prepare_data did before: decode at the dataset's default size, resize while extracting features
        ds = cached_features(get_dataset('cub', root=root, train_flag=0, seed=0), cfg['backbone'], pretrained=True, image_size=cfg['image_size'])
    print(json.dumps(dict(seconds=time.perf_counter() - t, peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                          train=list(ds.train.x.shape), storage=ds.description.get('storage'))))


if __name__ == '__main__':
    if sys.argv[1:2] == ['_child']: child(sys.argv[2], sys.argv[3]); sys.exit()
    root = sys.argv[1] if len(sys.argv) > 1 else str(ROOT.parent / 'shared' / 'data' / 'cub' / 'CUB_200_2011_subset100')
    print(f'load average at start: {os.getloadavg()}')
    for case in ('before', 'now'):
        with tempfile.TemporaryDirectory() as d:
            env = dict(os.environ, HIER_REPRO_CACHE=d, OMP_WAIT_POLICY='PASSIVE')
            out = subprocess.run([sys.executable, __file__, '_child', case, root], env=env, capture_output=True, text=True)
            if out.returncode: sys.exit(out.stderr[-2000:])
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{case:6s}: peak RSS {r['peak_mb']:.0f} MB, {r['seconds']:.0f} s ({r['storage']})")
