import os
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get('HIER_REPRO_SHARED', ROOT.parent / 'shared')) / 'data'


@pytest.fixture
def shared_data():
    "The read-only real data beside the project (../shared/data); tests using it skip in a user's clone."
    if not SHARED.exists(): pytest.skip(f'{SHARED} not found: real-data checks need ../shared/data beside the repository')
    return SHARED
