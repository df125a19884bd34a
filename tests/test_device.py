"""Device batching (the CUDA path): identical batches and results on every device.

The DeviceBatcher logic runs on CPU here; the CUDA tests skip with a reason where
there is no GPU (benchmarks/gpu_check.sh runs them on a GPU machine).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bigram.backends.torch_backend import TorchBackend  # noqa: E402
from bigram.backends.torch_dist import DeviceBatcher, TorchTrainer, split_to_device  # noqa: E402
from bigram.core.backend import AdamWConfig  # noqa: E402
from bigram.core.data import Batcher  # noqa: E402
from bigram.core.sampling import init_weights  # noqa: E402
from bigram.core.train import TrainConfig, make_train_batcher, train  # noqa: E402

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]


@pytest.mark.parametrize("device", DEVICES)
def test_device_batcher_draws_the_host_batches(device, shakespeare):
    host, ref = Batcher(shakespeare.train, 16, 8, 5), Batcher(shakespeare.train, 16, 8, 5)
    dev = DeviceBatcher(host, torch.device(device), chunk_steps=7)  # 7: refills fall mid-run
    for step in range(20):
        x, y = dev.get_batch()
        xr, yr = ref.get_batch()
        assert x.device.type == device and x.dtype == torch.long
        assert np.array_equal(x.cpu().numpy(), xr) and np.array_equal(y.cpu().numpy(), yr), step
    assert dev.get_state() == ref.get_state()  # the state after 20 batches, not after the 21 prefetched
    dev.set_state(ref.get_state())
    assert np.array_equal(dev.get_batch()[0].cpu().numpy(), ref.get_batch()[0])


def test_wide_vocab_split_goes_to_the_device_as_int32():
    data = np.array([0, 300, 65_535, 7], dtype=np.uint16)
    t = split_to_device(data, torch.device("cpu"), piece=3)
    assert t.dtype == torch.int32 and t.tolist() == data.tolist()


def _train(shakespeare, device: str, batcher_factory, steps=60):
    cfg = TrainConfig(steps=steps, batch_size=16, eval_interval=steps, optim=AdamWConfig())
    model = TorchBackend.create(init_weights(shakespeare.tokenizer.vocab_size, cfg.seed), device=device,
                                dtype="float64", optim=cfg.optim)
    model, batcher = batcher_factory(model, cfg)
    result = train(model, shakespeare, cfg, backend="torch", batcher=batcher, progress=False, log=lambda m: None)
    return model.get_state(), result


def _host(model, cfg):
    return model, None


def _device(shakespeare):
    def make(model, cfg):
        return TorchTrainer(model), DeviceBatcher(make_train_batcher(shakespeare, cfg), model.torch_device)

    return make


@pytest.mark.parametrize("device", DEVICES)
def test_device_batching_trains_like_host_batching_on_cpu(device, shakespeare):
    want, _ = _train(shakespeare, "cpu", _host)
    got, result = _train(shakespeare, device, _device(shakespeare))
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-9, err_msg=key)
    assert np.isfinite(result.val_loss)


@needs_cuda
def test_cli_trains_on_cuda(tmp_path, shakespeare_path):
    out = subprocess.run([sys.executable, "-m", "bigram", "--backend", "torch", "--device", "cuda", "train",
                          "--data", str(shakespeare_path), "--steps", "200", "--max-new-tokens", "0", "--json",
                          "--out", str(tmp_path / "ck")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["device"] == "cuda" and res["val_loss"] < 4.0
