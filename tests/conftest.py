import os
from pathlib import Path
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get('HIER_REPRO_SHARED', ROOT.parent / 'shared')) / 'data'


@pytest.fixture
def shared_data():
    "The read-only real data beside the project (../shared/data); tests using it skip in a user's clone."
    if not SHARED.exists(): pytest.skip(f'{SHARED} not found: real-data checks need ../shared/data beside the repository')
    return SHARED


@pytest.fixture
def one_thread():
    "Small tensors: one torch thread avoids OpenMP spin-waits on a shared 2-core CPU (up to 20x faster there)."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
