"""JupyterLab as a user meets it: a real `jupyter lab` server on a free port with a token, an experiment notebook opened in a session,
its code cells executed one by one through the kernel's websocket channel (the Jupyter messaging protocol), and its outputs checked.
Needs the `[lab]` extra (pip install -e '.[lab]'); skips without it."""
import datetime, json, os, shutil, socket, subprocess, sys, time, urllib.error, urllib.request, uuid
from pathlib import Path

import pytest

from conftest import ROOT

pytest.importorskip('jupyter_server', reason="jupyter_server is not installed: pip install -e '.[lab]' (JupyterLab) to run the notebook-through-a-server test")
pytest.importorskip('jupyterlab', reason="jupyterlab is not installed: pip install -e '.[lab]' to run the notebook-through-a-server test")
import websocket   # websocket-client: a dependency of jupyter_server

NOTEBOOK = 'exp_random_cnn.ipynb'
PARAMS = dict(profile='test', seeds='1', allow_dirty=True)   # the test profile: 200 test images, 200 permutations (seconds on a CPU)
START_S, CELL_S = 120, 300                                    # limits: server start, one cell


class Server:
    "A `jupyter lab` subprocess and its REST API (token in the Authorization header)."
    def __init__(self, proc, port, token, root, log):
        self.proc, self.port, self.token, self.root, self.log = proc, port, token, root, log
        self.url, self.ws_url = f'http://127.0.0.1:{port}', f'ws://127.0.0.1:{port}'

    def request(self, method, path, body=None, timeout=30):
        req = urllib.request.Request(self.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={'Authorization': f'token {self.token}', 'Content-Type': 'application/json'})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            data = r.read()
            return r.status, (json.loads(data) if data and 'json' in r.headers.get('Content-Type', '') else data)

    def log_tail(self, n=3000): return self.log.read_text(errors='replace')[-n:] if self.log.exists() else ''


def _free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _kernelspec(where: Path) -> Path:
    "A python3 kernelspec that starts this interpreter's ipykernel, first on JUPYTER_PATH (over any user or system python3)."
    d = where / 'kernels' / 'python3'; d.mkdir(parents=True)
    (d / 'kernel.json').write_text(json.dumps(dict(argv=[sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
                                                   display_name='Python 3 (hier_repro venv)', language='python')))
    return where


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    "`jupyter lab --no-browser` in a temporary root holding a parameterised copy of the notebook; results, runs and figures go to temporary folders."
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook
    tmp = tmp_path_factory.mktemp('lab'); root = tmp / 'root'; root.mkdir()
    nb = parameterize_notebook(load_notebook_node(str(ROOT / 'nbs' / NOTEBOOK)), PARAMS)   # the injected cell papermill would add
    nbformat.write(nb, root / NOTEBOOK)
    jdirs = {k: str(tmp / 'jupyter' / v) for k, v in dict(JUPYTER_CONFIG_DIR='config', JUPYTER_DATA_DIR='data', JUPYTER_RUNTIME_DIR='runtime',
                                                            JUPYTERLAB_SETTINGS_DIR='lab-settings', JUPYTERLAB_WORKSPACES_DIR='workspaces',
                                                            IPYTHONDIR='ipython').items()}
    env = {k: v for k, v in os.environ.items() if not k.startswith('HIER_REPRO_') and k not in ('IN_TEST', 'JUPYTER_PATH')} | jdirs | dict(
        JUPYTER_PATH=str(_kernelspec(tmp / 'kernelspec')), PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get('PYTHONPATH')] if p]),
        HIER_REPRO_RUNS=str(tmp / 'runs'), HIER_REPRO_RESULTS=str(tmp / 'results'), HIER_REPRO_FIGURES=str(tmp / 'figures'),
        OMP_WAIT_POLICY='PASSIVE', MPLBACKEND='module://matplotlib_inline.backend_inline')
    port, token, log = _free_port(), uuid.uuid4().hex, tmp / 'server.log'
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}', '--ServerApp.port_retries=0',
           f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={root}', '--ServerApp.open_browser=False',
           '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate', '--LabApp.news_url=', '--LabApp.extension_manager=readonly'] + (['--allow-root'] if os.geteuid() == 0 else [])
    with open(log, 'wb') as f: proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=f, stderr=subprocess.STDOUT)
    srv, t0 = Server(proc, port, token, root, log), time.perf_counter()
    try:
        while True:
            if proc.poll() is not None: pytest.fail(f'jupyter lab exited with {proc.returncode} at start:\n{srv.log_tail()}')
            try:
                if srv.request('GET', '/api/status', timeout=5)[0] == 200: break
            except (urllib.error.URLError, ConnectionError, TimeoutError): pass
            if time.perf_counter() - t0 > START_S: pytest.fail(f'jupyter lab did not answer on port {port} in {START_S}s:\n{srv.log_tail()}')
            time.sleep(0.5)
        srv.start_s = time.perf_counter() - t0
        yield srv
    finally:
        try:
            for s in srv.request('GET', '/api/sessions')[1]: srv.request('DELETE', f"/api/sessions/{s['id']}")
            srv.request('POST', '/api/shutdown')
        except Exception: pass
        try: proc.wait(30); forced = False
        except subprocess.TimeoutExpired:
            forced = True; proc.terminate()
            try: proc.wait(10)
            except subprocess.TimeoutExpired: proc.kill(); proc.wait()
        if forced: pytest.fail(f'jupyter lab did not stop within 30s of POST /api/shutdown (terminated):\n{srv.log_tail()}')


class Channels:
    "A kernel's websocket channel: send requests, collect the replies and iopub messages of each until the kernel is idle again."
    def __init__(self, srv, kernel_id):
        self.session = uuid.uuid4().hex
        self.ws = websocket.create_connection(f'{srv.ws_url}/api/kernels/{kernel_id}/channels?session_id={self.session}',
                                              header=[f'Authorization: token {srv.token}'], timeout=CELL_S)

    def request(self, msg_type, content=None, channel='shell'):
        "Send a request; return (its reply's content, the iopub messages it caused) once the reply has come and the kernel went idle."
        mid = uuid.uuid4().hex
        self.ws.send(json.dumps(dict(header=dict(msg_id=mid, msg_type=msg_type, username='test', session=self.session, version='5.3',
                                                 date=datetime.datetime.now(datetime.timezone.utc).isoformat()),
                                     parent_header={}, metadata={}, content=content or {}, channel=channel, buffers=[])))
        reply, iopub, idle, t0 = None, [], False, time.perf_counter()
        while reply is None or not idle:
            if time.perf_counter() - t0 > CELL_S: raise TimeoutError(f'{msg_type}: no reply and idle status in {CELL_S}s')
            m = json.loads(self.ws.recv())
            if m.get('parent_header', {}).get('msg_id') != mid: continue
            if m['channel'] == 'iopub':
                if m['msg_type'] == 'status': idle = m['content']['execution_state'] == 'idle'
                else: iopub.append(m)
            elif m['msg_type'] == msg_type.replace('_request', '_reply'): reply = m['content']
        return reply, iopub

    def execute(self, code):
        return self.request('execute_request', dict(code=code, silent=False, store_history=True, user_expressions={},
                                                   allow_stdin=False, stop_on_error=True))


def _text(msgs):
    "Everything the messages printed or returned as text (stream text, text/plain and text/html, error tracebacks)."
    out = []
    for m in msgs:
        c = m['content']
        if m['msg_type'] == 'stream': out.append(c['text'])
        elif m['msg_type'] in ('execute_result', 'display_data'): out += [c['data'].get(k, '') for k in ('text/plain', 'text/html', 'text/markdown')]
        elif m['msg_type'] == 'error': out.append('\n'.join(c['traceback']))
    return '\n'.join(out)


def test_notebook_runs_in_jupyterlab(server):
    "Every code cell of the notebook, as JupyterLab would send it, runs without an error; the record, the table and the figure come out."
    t0 = time.perf_counter()
    assert server.request('GET', '/lab')[0] == 200                                   # JupyterLab's page, not only the bare server
    spec = server.request('GET', '/api/kernelspecs')[1]['kernelspecs']['python3']['spec']
    assert spec['argv'][0] == sys.executable, spec['argv']
    model = server.request('GET', f'/api/contents/{NOTEBOOK}')[1]                     # the notebook as the server hands it to the page
    cells = [c for c in model['content']['cells'] if c['cell_type'] == 'code']
    assert 'injected-parameters' in cells[1]['metadata'].get('tags', []), 'the test parameters follow the parameters cell'
    status, sess = server.request('POST', '/api/sessions', dict(path=NOTEBOOK, type='notebook', name=NOTEBOOK, kernel=dict(name='python3')))
    assert status == 201 and sess['kernel']['name'] == 'python3'
    ch = Channels(server, sess['kernel']['id'])
    try:
        info, _ = ch.request('kernel_info_request')                                   # waits for the kernel to be ready
        assert info['status'] == 'ok' and info['language_info']['name'] == 'python'
        outputs = []
        for i, cell in enumerate(cells):
            reply, msgs = ch.execute(cell['source'])
            errors = [m for m in msgs if m['msg_type'] == 'error']
            assert reply['status'] == 'ok' and not errors, f"cell {i} failed:\n{cell['source']}\n{_text(errors) or reply}"
            outputs.append(msgs)
        reply, msgs = ch.execute('import sys, hier_repro; print(sys.executable); print(hier_repro.__file__)')
        exe, mod = _text(msgs).split()
        assert reply['status'] == 'ok' and exe == sys.executable and Path(mod).parent == ROOT / 'hier_repro'   # this venv, this checkout
    finally: ch.ws.close()
    rec_file = server.root.parent / 'runs' / 'results_test' / 'random_cnn' / 'fashion_mnist_small' / 'smallcnn__seed1.json'
    assert rec_file.exists(), sorted(str(p) for p in server.root.parent.rglob('*.json'))
    rec = json.loads(rec_file.read_text())
    assert rec['config']['profile'] == 'test' and rec['seed'] == 1
    for stat in ('classwise', 'elementwise'):
        m = rec['metrics'][stat]
        assert -1 <= m['observed'] <= 1 and 0 < m['p'] <= 1 and m['n_permutations'] > 0
    grid_out, section_out = outputs[3], outputs[4]
    assert '[random_cnn] fashion_mnist_small smallcnn seed 1' in _text(grid_out)         # the run's own log line
    table = [m['content']['data'] for m in grid_out if m['msg_type'] == 'execute_result']
    assert table and 'text/html' in table[0] and 'classwise observed' in table[0]['text/html']   # the DataFrame, rendered as HTML
    shown = [k for m in section_out if m['msg_type'] == 'display_data' for k in m['content']['data']]
    assert 'text/markdown' in shown and 'image/png' in shown, shown                  # the report section: claims table and figure
    print(f'jupyter lab started in {server.start_s:.1f}s; notebook executed through it in {time.perf_counter() - t0:.1f}s')
