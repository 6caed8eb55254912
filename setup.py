"nbdev's standard setup: every setting is read from settings.ini; edit there, not here."
from configparser import ConfigParser
from pathlib import Path
import setuptools, shlex
from setuptools.command.build_py import build_py

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

cfg_keys = 'version description keywords author author_email'.split()
expected = cfg_keys + "lib_name user branch license status min_python audience language".split()
for o in expected: assert o in cfg, "missing expected setting: {}".format(o)
setup_cfg = {o: cfg[o] for o in cfg_keys}

licenses = {
    'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License'),
    'mit': ('MIT License', 'OSI Approved :: MIT License'),
}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable',
            '6 - Mature', '7 - Inactive']
py_versions = '3.10 3.11 3.12 3.13'.split()

requirements = shlex.split(cfg.get('requirements', ''))
if cfg.get('pip_requirements'): requirements += shlex.split(cfg.get('pip_requirements', ''))
min_python = cfg['min_python']
lic = licenses.get(cfg['license'].lower(), (cfg['license'], None))
dev_requirements = shlex.split(cfg.get('dev_requirements') or '')
lab_requirements = shlex.split(cfg.get('lab_requirements') or '')

# What the library reads from data/: an installed package carries it as hier_repro/data (core.data_root finds it there).
PACKAGE_DATA = ['data/README.md', 'data/checksums.json', 'data/fashion_mnist_small.npz',
                'data/hierarchies/README.md', 'data/hierarchies/*.csv']

class BuildPyWithData(build_py):
    "build_py, then data/ (hierarchy files, the embedded default, checksums) copied into the package; an editable install reads data/ in place."
    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False): return
        files = [f for pattern in PACKAGE_DATA for f in sorted(Path().glob(pattern))]
        if not files: raise FileNotFoundError('data/ is missing: build from a checkout or an sdist (MANIFEST.in ships data/)')
        for f in files:
            target = Path(self.build_lib, cfg['lib_name'], f)
            self.mkpath(str(target.parent)); self.copy_file(str(f), str(target))

setuptools.setup(
    name=cfg['lib_name'],
    license=lic[0],
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title()]
                + ['Programming Language :: Python :: ' + o for o in py_versions[py_versions.index(min_python):]]
                + (['License :: ' + lic[1]] if lic[1] else []),
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=[cfg['lib_name'], cfg['lib_name'] + '.*']),
    include_package_data=True,
    install_requires=requirements,
    extras_require={'dev': dev_requirements, 'lab': lab_requirements},
    cmdclass={'build_py': BuildPyWithData},
    dependency_links=cfg.get('dep_links', '').split(),
    python_requires='>=' + cfg['min_python'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={
        'console_scripts': cfg.get('console_scripts', '').split(),
        'nbdev': [f'{cfg.get("lib_path")}={cfg.get("lib_path")}._modidx:d'],
    },
    **setup_cfg)
