"""Kill ranks of a torchrun job at random moments; used by tests/test_preempt.py and benchmarks/preempt_soak.py.

    run_with_kills(train_args, out, kills=5, seed=1)

starts `python -m torch.distributed.run --standalone --nproc_per_node 2 --max-restarts K -m bigram
TRAIN_ARGS --resume auto --out OUT` and, `kills` times, SIGKILLs one worker: half the time a random
rank a moment after the running generation has saved (so it is mid-training), half the time while
rank 0 is inside a save (a `.bigram-tmp-*` or `.bigram-save` entry exists in OUT). torchrun then
restarts the workers, which resume from the last complete checkpoint.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class KillReport:
    kills: list[dict] = field(default_factory=list)  # {"kind": "step"|"save", "rank": r, "t": s}
    restarts: int = 0
    returncode: int | None = None
    log: str = ""


def torchrun(nproc: int = 2, max_restarts: int = 0) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "--max-restarts", str(max_restarts), "--monitor-interval", "0.05"]


def env(**extra) -> dict:
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), BIGRAM_DIST_TIMEOUT="20")
    e.update(extra)
    return e


def _workers(agent: int) -> dict[int, int]:
    """rank -> pid of the agent's live worker processes."""
    out = {}
    try:
        kids = Path(f"/proc/{agent}/task/{agent}/children").read_text().split()
    except OSError:
        return out
    for pid in map(int, kids):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(b"RANK="):
                out[int(item[5:])] = pid
    return out


def _saving(out: Path) -> bool:
    try:
        return any(e.name.startswith((".bigram-tmp-", ".bigram-save")) for e in os.scandir(out))
    except OSError:
        return False


def _step(out: Path) -> int | None:
    import json

    try:
        return json.loads((out / "config.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return None


def _wait(cond, proc, deadline: float, poll: float = 0.002) -> bool:
    while time.monotonic() < deadline and proc.poll() is None:
        if cond():
            return True
        time.sleep(poll)
    return False


def run_with_kills(train_args: list[str], out: Path, *, kills: int, seed: int, cwd: Path,
                   timeout: float = 240.0) -> KillReport:
    rng = random.Random(seed)
    report = KillReport()
    cmd = torchrun(max_restarts=kills + 2) + ["-m", "bigram", *train_args, "--resume", "auto", "--out", str(out)]
    log = cwd / f"agent-{seed}.log"
    with open(log, "w") as logf:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env(LOGLEVEL="INFO"), stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        t0 = time.monotonic()
        try:
            for i in range(kills):
                kind = "save" if i % 2 else "step"
                killed = {k["pid"] for k in report.kills}

                def fresh() -> bool:  # a new generation: both ranks up, none of them killed before
                    w = _workers(proc.pid)
                    return len(w) == 2 and not set(w.values()) & killed

                if not _wait(fresh, proc, deadline, 0.02):
                    break
                gen = _workers(proc.pid)
                before = _step(out)
                if kind == "step":  # mid-training: once this generation has saved, a random moment later
                    if not _wait(lambda: _step(out) != before, proc, deadline, 0.005):
                        break
                    time.sleep(rng.uniform(0, 0.3))
                elif not _wait(lambda: _saving(out), proc, deadline, 0.0005):
                    break
                rank = rng.randrange(2)
                pid = gen.get(rank)
                if pid is None:
                    break
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                report.kills.append({"kind": kind, "rank": rank, "pid": pid, "t": round(time.monotonic() - t0, 3)})
            report.returncode = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    report.log = log.read_text()
    report.restarts = report.log.count("will restart worker group")  # the agent's INFO line (LOGLEVEL=INFO)
    return report


if __name__ == "__main__":
    # torchrun entry for tests: `dist_kill.py CODES_DIR BIGRAM ARGS...` runs the bigram CLI as
    # `-m bigram` would and records this rank's exit code in CODES_DIR/rank{RANK}.code.
    from bigram.cli.app import main

    codes, *argv = sys.argv[1:]
    try:
        main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        Path(codes, f"rank{os.environ['RANK']}.code").write_text(str(code))
        raise
