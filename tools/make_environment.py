#!/usr/bin/env python
"Write environment.yml from settings.ini's requirements and dev_requirements (tests/test_repo.py checks they agree)."
import configparser, shlex
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def requirements() -> tuple[list[str], list[str]]:
    c = configparser.ConfigParser(delimiters=['=']); c.read(root / 'settings.ini')
    return shlex.split(c['DEFAULT']['requirements']), shlex.split(c['DEFAULT']['dev_requirements'])

def render() -> str:
    req, dev = requirements()
    lines = ["# conda environment for hier_repro, generated from settings.ini by tools/make_environment.py",
             "name: hier_repro", "channels:", "  - conda-forge", "dependencies:", "  - python>=3.10", "  - pip", "  - pip:"]
    lines += [f'    - "{r}"' for r in req + dev] + ['    - "-e ."']
    return '\n'.join(lines) + '\n'

if __name__ == '__main__':
    (root / 'environment.yml').write_text(render()); print('wrote environment.yml')
