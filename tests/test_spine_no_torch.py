"""core and the NumPy backend must never import torch: checked in a clean interpreter."""

import subprocess
import sys

PROBE = """
import sys
import numpy as np
import bigram.core, bigram.core.train, bigram.core.checkpoint, bigram.core.plugins
import bigram.backends.numpy_backend, bigram.backends.torch_backend
from bigram.core.plugins import load_backends
reg = load_backends()
m = reg.get("numpy").cls.create(bigram.core.init_weights(5, 0))
m.train_step(np.zeros((2, 3), dtype=np.int64), np.ones((2, 3), dtype=np.int64))
print("torch" in sys.modules)
"""


def test_core_and_numpy_backend_never_import_torch():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_help_never_imports_torch():
    probe = (
        "import sys\nfrom bigram.cli.app import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert "NO-TORCH" in out.stderr
