"""Injected faults during every write, with nothing lost.

* SIGKILL at every step of the write protocol (each ``write``, ``fsync``,
  ``chmod``, ``rename`` / ``renameat2``, ``unlink``, ``rmtree`` of a write,
  in turn) of ``write_results``, the per-seed records of eval, a model save,
  ``save_vectors(.npy)``, align's W (the real ``taskspec-rs align``) and the
  analyze outputs; SIGKILL at random times of the Rust writer
  (``save_vectors`` text and binary).  Afterwards every output is the
  previous complete file, the new complete file or (with no previous file)
  absent; only hidden temporary files of the killed process may remain, and
  the next write removes them.
* A file-size limit (``RLIMIT_FSIZE``), a full disk (ENOSPC) and a read-only
  folder give a clear error and leave no partial or temporary file.
* Ctrl-C during eval exits with 130 and leaves only complete files.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# The child: writes version 1 and 2 of an output normally (the expectations), then for kill point
# n = 1, 2, ...: resets the output to version 1 (or to nothing), forks (or, for a command, starts a
# process) that writes version 2 with hooks that SIGKILL it at the n-th step, and classifies every
# file afterwards.  Prints one JSON object per kill point.
CHILD = r'''
import builtins, json, os, random, shutil, signal, subprocess, sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
KIND, WORK = sys.argv[1], Path(sys.argv[2])
KILL_AT = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3].isdigit() else 0
STATE = {"n": 0}


def event(name):
    STATE["n"] += 1
    if STATE["n"] == KILL_AT:
        fd = os.open(WORK / "event.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.write(fd, name.encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


class Writing:
    """A file being written: the kill point of its first write() falls after half of the bytes."""

    def __init__(self, f, name):
        self._f, self._name, self._first = f, name, True

    def write(self, data):
        if self._first:
            self._first = False
            if STATE["n"] + 1 == KILL_AT:
                view = memoryview(data).cast("B")
                self._f.write(view[: max(1, len(view) // 2)])
                self._f.flush()
            event("write half of " + self._name)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


def install_hooks():
    from taskspec_rs import _io

    def hook(owner, name):
        original = getattr(owner, name)

        def hooked(*args, **kwargs):
            event("before " + name)
            result = original(*args, **kwargs)
            event("after " + name)
            return result

        setattr(owner, name, hooked)

    for name in ("fsync", "replace", "rename", "chmod", "unlink"):
        hook(os, name)
    hook(shutil, "rmtree")
    hook(_io, "_rename_exchange")
    fdopen, open_ = os.fdopen, builtins.open
    os.fdopen = lambda fd, *a, **k: Writing(fdopen(fd, *a, **k), "temp file")
    builtins.open = lambda file, mode="r", *a, **k: (
        Writing(open_(file, mode, *a, **k), os.path.basename(str(file)))
        if "b" in mode and ("w" in mode or "x" in mode) else open_(file, mode, *a, **k)
    )


# ------------------------------------------------------------------ the writes, version v into root

def write_results(v, root):
    from taskspec_rs.evaluate import ExperimentResult, write_results

    res = ExperimentResult(meta={"seeds": [0], "source_lang": "src", "version": v})
    for i in range(40):
        res.add(f"method{i}", "src", 0.5 + v / 100)
        res.add(f"method{i}", "tga", 0.4 + v / 100)
    write_results(res, root / "out", title=f"v{v}")


def write_record(v, root):
    from taskspec_rs.evaluate import MethodRun, RunStore

    store = RunStore(root / "out" / "runs", {"run": "r"}, lambda _m: None)
    store.save(0, "clwe_fixed", MethodRun({"src": 0.5 + v / 100, "tga": 0.25}, {"tga": v}, {"tga": {"v": v}}))


def write_model(v, root):
    import numpy as np
    import torch
    from taskspec_rs.model import BagClassifier, TaskModel

    torch.set_num_threads(1)
    torch.manual_seed(v)
    rng = np.random.default_rng(v)
    net = BagClassifier(rng.normal(size=(50, 8)).astype("float32"), 3, hidden=4, dropout=0.0, freeze=False)
    model = TaskModel(net, [f"w{i}" for i in range(50)], ["a", "b", "c"], "src", "regex", "opt",
                      {"hidden": 4, "dropout": 0.0}, x_gen=rng.normal(size=(50, 8)).astype("float32"),
                      info={"version": v})
    model.save(root / "model", force=True)


def write_npy(v, root):
    import numpy as np
    from taskspec_rs import save_vectors

    save_vectors(root / "out" / "emb.npy", [f"w{i}" for i in range(300 + v)], np.full((300 + v, 16), v, "float32"))


def write_w(v, root):
    src, tgt, pairs = WORK / "src.vec", WORK / "tgt.vec", WORK / f"dict{v}.txt"
    if not src.exists():
        import numpy as np

        rng = np.random.default_rng(0)
        x = rng.normal(size=(60, 8))
        q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
        for path, m in ((src, x), (tgt, x @ q + 0.01 * rng.normal(size=x.shape))):
            path.write_text("60 8\n" + "".join(f"w{i} " + " ".join(map(str, r)) + "\n" for i, r in enumerate(m)))
        for d, n in ((1, 20), (2, 40)):
            (WORK / f"dict{d}.txt").write_text("".join(f"w{i} w{i}\n" for i in range(n)))
    out = str(root / "out" / "W.npy")
    args = ["align", str(src), str(tgt), "--dict", str(pairs), "--iterations", "0", "--out", out]
    from taskspec_rs.cli import main

    if main(args + ["--quiet"]) != 0:
        raise SystemExit("align failed")


ANALYSIS_MODELS = {}


def write_analysis(v, root):
    import torch
    from taskspec_rs.analyze import run_analysis
    from taskspec_rs.config import load_config
    from taskspec_rs.experiment import SeedRun

    torch.set_num_threads(1)
    train = SeedRun.train

    def cached(self, kind, lang_data):  # train once (before any fork), reuse in every child
        key = (kind, lang_data.lang, self.seed)
        if key not in ANALYSIS_MODELS:
            ANALYSIS_MODELS[key] = train(self, kind, lang_data)
        return ANALYSIS_MODELS[key]

    SeedRun.train = cached
    config = load_config(os.environ["FAULT_CONFIG"])
    run_analysis(config, root / "out", n_neighbors=2 + v, alpha_k=3)


KINDS = {"results": write_results, "record": write_record, "model": write_model, "npy": write_npy,
         "W": write_w, "analyze": write_analysis}
EXEC = {"W"}  # a real command in a new process (it uses the Rust thread pool)


# ------------------------------------------------------------------ classification

def tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def equal(name, a, b):
    """Same content: bytes, or for torch files (a random serialization id inside) the same tensors."""
    if a is None or b is None or a == b:
        return a == b
    if not name.endswith(".pt"):
        return False
    import io
    import torch

    try:
        x, y = (torch.load(io.BytesIO(d), weights_only=True) for d in (a, b))
    except Exception:
        return False
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def classify(root, v1, v2):
    files = tree(root) if root.exists() else {}
    states = {}
    for name in sorted(set(v1) | set(v2)):
        data = files.pop(name, None)
        old, new = equal(name, data, v1.get(name)), equal(name, data, v2.get(name))
        if data is None:
            states[name] = "absent"
        elif old and new:
            states[name] = "same"
        elif new:
            states[name] = "new"
        elif old:
            states[name] = "old"
        else:
            states[name] = "TORN"
    temps = [n for n in files if any(part.startswith(".") and ".tmp-" in part for part in Path(n).parts)]
    unexpected = [n for n in files if n not in temps]
    return states, temps, unexpected


def run_write(v, root, kill_at):
    """Write version v into root with the hooks, in a fork (or a new process for EXEC kinds); the exit code."""
    if KIND in EXEC:
        proc = subprocess.run([sys.executable, __file__, KIND, str(WORK), str(kill_at)], capture_output=True)
        return proc.returncode
    pid = os.fork()
    if pid == 0:
        child(v, root, kill_at)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def child(v, root, kill_at):
    global KILL_AT
    KILL_AT = kill_at
    try:
        install_hooks()
        KINDS[KIND](v, root)
    except BaseException:
        import traceback

        traceback.print_exc()
        os._exit(4)
    fd = os.open(WORK / "event.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, f"count {STATE['n']}".encode())
    os._exit(3)


def reset(target, fresh):
    shutil.rmtree(target, ignore_errors=True)
    if not fresh:
        shutil.copytree(WORK / "expect1", target)
    (WORK / "event.txt").unlink(missing_ok=True)


def main():
    if KILL_AT:  # an EXEC child
        child(2, WORK / "target", KILL_AT)
    fresh = len(sys.argv) > 3
    expect = {}
    for v in (1, 2):
        KINDS[KIND](v, WORK / f"expect{v}")
        expect[v] = tree(WORK / f"expect{v}")
    target = WORK / "target"
    reset(target, fresh)
    assert run_write(2, target, 10**9) == 3
    count = int((WORK / "event.txt").read_text().split()[1])
    points = list(range(1, count + 1))
    sample = int(os.environ.get("FAULT_SAMPLE", "0"))
    if sample:
        points = sorted(random.Random(0).sample(points, min(sample, count)))
    print(json.dumps({"events": count, "points": len(points)}), flush=True)
    for kill_at in points:
        reset(target, fresh)
        rc = run_write(2, target, kill_at)
        event = (WORK / "event.txt").read_text() if (WORK / "event.txt").exists() else "?"
        states, temps, unexpected = classify(target, expect[1], expect[2])
        KINDS[KIND](2, target)  # the next write: finishes, and removes the killed writer's temporary files
        after, temps_after, unexpected_after = classify(target, expect[1], expect[2])
        print(json.dumps({"kill_at": kill_at, "rc": rc, "event": event, "states": states, "temps": temps,
                          "unexpected": unexpected, "after": after, "temps_after": temps_after,
                          "unexpected_after": unexpected_after}), flush=True)


main()
'''


def _sweep(tmp_path: Path, kind: str, *, fresh: bool = False, env: dict | None = None) -> list[dict]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    work = tmp_path / kind
    work.mkdir()
    cmd = [sys.executable, str(script), kind, str(work)] + (["fresh"] if fresh else [])
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "TASKSPEC_NUM_THREADS": "2", **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def _check_sweep(rows: list[dict], *, fresh: bool, sampled: bool = False) -> list[dict]:
    head, killed = rows[0], rows[1:]
    assert len(killed) == head["points"] and killed, rows
    assert all(r["rc"] == -signal.SIGKILL for r in killed), [r for r in killed if r["rc"] != -signal.SIGKILL]
    seen = set()
    for r in killed:
        states = set(r["states"].values())
        assert "TORN" not in states and not r["unexpected"], r
        if not fresh:
            assert "absent" not in states, r  # a previous complete file is never lost
        assert set(r["after"].values()) <= {"new", "same"} and not r["temps_after"] and not r["unexpected_after"], r
        seen |= states
    if not sampled:  # killed before the first rename: all old; after the last: all new
        assert {"new"} <= seen and ({"absent"} if fresh else {"old"}) <= seen, seen
    return killed


@pytest.mark.parametrize("kind", ["results", "record", "npy", "model"])
def test_sigkill_at_every_step_of_a_library_write(tmp_path, kind):
    killed = _check_sweep(_sweep(tmp_path, kind), fresh=False)
    assert len(killed) > 8


def test_sigkill_at_every_step_of_a_new_model_directory(tmp_path):
    killed = _check_sweep(_sweep(tmp_path, "model", fresh=True), fresh=True)
    for r in killed:  # the folder appears whole or not at all
        assert len({state == "absent" for state in r["states"].values()}) == 1, r


def test_sigkill_at_every_step_of_align_writing_w(tmp_path):
    _check_sweep(_sweep(tmp_path, "W"), fresh=False)


def test_sigkill_at_random_steps_of_the_analyze_outputs(tmp_path, small_config):
    env = {"FAULT_CONFIG": str(small_config), "FAULT_SAMPLE": "5"}
    killed = _check_sweep(_sweep(tmp_path, "analyze", env=env), fresh=False, sampled=True)
    assert len(killed) == 5


# ------------------------------------------------------------------ the Rust writer, killed at random times

RUST_WRITER = r"""
import sys, numpy as np
from taskspec_rs import save_vectors
path, n = sys.argv[1], 20000
words = [f"w{i}" for i in range(n)]
for v in range(1, 1000):
    save_vectors(path, words, np.full((n, 24), v, dtype=np.float32) + np.arange(24, dtype=np.float32))
    print(v, flush=True)
"""


@pytest.mark.parametrize("name", ["vectors.vec", "vectors.bin"])
def test_sigkill_at_random_times_of_save_vectors(tmp_path, name):
    from taskspec_rs import load_vectors

    script = tmp_path / "writer.py"
    script.write_text(RUST_WRITER)
    path = tmp_path / name
    rng = np.random.default_rng(0)
    for trial in range(4):
        with subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True) as proc:
            first = int(proc.stdout.readline())
            time.sleep(float(rng.uniform(0.0, 0.3)))
            proc.kill()
            rest = proc.stdout.read().split()
        done = int(rest[-1]) if rest else first
        words, vecs = load_vectors(path)
        assert len(words) == 20000 and vecs.shape == (20000, 24), trial
        v = int(vecs[0, 0])
        assert v in (done, done + 1) and np.array_equal(vecs, np.full_like(vecs, v) + np.arange(24)), (trial, v, done)


# ------------------------------------------------------------------ a full disk, a file-size limit

LIMITED = r"""
import json, os, sys
from pathlib import Path
import numpy as np
from taskspec_rs import save_vectors
from taskspec_rs._io import WriteError, atomic_write_text
from taskspec_rs.evaluate import ExperimentResult, write_results
from taskspec_rs.model import BagClassifier, TaskModel

out = Path(sys.argv[1])
words = [f"w{i}" for i in range(4000)]
big = np.ones((4000, 16), dtype=np.float32)
result = ExperimentResult(meta={"seeds": [0], "filler": "x" * 100_000})
result.add("m", "src", 0.5)
net = BagClassifier(big, 2, hidden=0, dropout=0.0, freeze=True)
model = TaskModel(net, words, ["a", "b"], "src", "regex", "fixed", {"hidden": 0, "dropout": 0.0}, x_gen=big)
writes = {
    "v.vec": lambda p: save_vectors(p, words, big),
    "v.bin": lambda p: save_vectors(p, words, big),
    "v.npy": lambda p: save_vectors(p, words, big),
    "notes.txt": lambda p: atomic_write_text(p, "x" * 200_000),
    "results": lambda p: write_results(result, p),
    "model": lambda p: model.save(p, force=True),
}
report = {}
for name, write in writes.items():
    old = out / name
    if name in ("results", "model"):
        old.mkdir()
        (old / "results.json" if name == "results" else old / "model.json").write_bytes(b"previous")
    else:
        old.write_bytes(b"previous")
    try:
        write(old)
        report[name] = "no error"
    except OSError as exc:
        first = old / "results.json" if name == "results" else old / "model.json" if name == "model" else old
        report[name] = {"errno": exc.errno, "message": str(exc), "write_error": isinstance(exc, WriteError),
                        "old": first.read_bytes() == b"previous"}
print(json.dumps(report))
"""


def _limit_file_size(limit: int, *, ignore_signal: bool):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        if ignore_signal:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return preexec


def test_file_size_limit_in_the_library_is_a_clear_error_and_leaves_the_old_file(tmp_path):
    script = tmp_path / "limited.py"
    script.write_text(LIMITED)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, str(script), str(out)],
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size(64 * 1024, ignore_signal=True),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    for name, r in report.items():
        assert r != "no error", name
        assert r["errno"] == errno.EFBIG and r["old"], (name, r)
        assert name in r["message"] and "File too large" in r["message"], (name, r)
    assert report["notes.txt"]["write_error"] and report["notes.txt"]["message"].startswith("cannot write ")
    assert sorted(p.name for p in out.iterdir()) == sorted(report)  # no temporary file or folder
    assert [p.name for p in (out / "results").iterdir()] == ["results.json"]
    assert [p.name for p in (out / "model").iterdir()] == ["model.json"]


def test_file_size_limit_in_the_cli_exits_2_with_one_line(tmp_path, small_config):
    """eval (its first output, runs/manifest.json, is written before any training) and align's W."""
    limit = _limit_file_size(512, ignore_signal=False)  # the CLI itself turns SIGXFSZ off
    src = small_config.parent / "vectors" / "src.vec"
    out, w = tmp_path / "eval", tmp_path / "W.npy"
    for argv, target in (
        (["eval", str(small_config), "--out", str(out)], out / "runs" / "manifest.json"),
        (["align", str(src), str(src), "--identical-seed", "--out", str(w)], w),
    ):
        proc = _cli(argv + ["--quiet"], preexec_fn=limit, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        assert proc.returncode == 2, proc.stderr[-2000:]
        err = proc.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"taskspec-rs: error: cannot write {target}: "), err
        assert err[0].endswith(": File too large"), err
    assert not (out / "runs" / "manifest.json").exists() and not w.exists()
    assert not [p for p in tmp_path.rglob(".*tmp-*")], list(tmp_path.rglob(".*tmp-*"))


def test_full_disk_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    from taskspec_rs._io import WriteError
    from taskspec_rs.evaluate import ExperimentResult, write_results
    from taskspec_rs.model import BagClassifier, TaskModel

    def full(*_args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    res = ExperimentResult(meta={"seeds": [0]})
    res.add("m", "src", 0.5)
    write_results(res, tmp_path / "out")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    net = BagClassifier(np.ones((3, 2), dtype=np.float32), 2, hidden=0, dropout=0.0, freeze=True)
    model = TaskModel(net, ["a", "b", "c"], ["x", "y"], "src", "regex", "fixed", {"hidden": 0, "dropout": 0.0})
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(WriteError, match=r"cannot write .*results\.json: No space left on device") as err:
        write_results(res, tmp_path / "out")
    assert isinstance(err.value, OSError) and err.value.errno == errno.ENOSPC
    with pytest.raises(WriteError, match=r"cannot write .*model: No space left on device"):
        model.save(tmp_path / "model")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ------------------------------------------------------------------ a read-only folder


READ_ONLY_REASONS = ("Permission denied", "Read-only file system")
_BIND_READ_ONLY = 'd=$1; shift; mount --bind "$d" "$d" && mount -o remount,bind,ro "$d" && exec "$@"'


@pytest.fixture()
def read_only(tmp_path):
    """``(folder, wrap)``: a folder that the commands ``wrap(argv)`` runs cannot write into.

    A user's folder is made read-only with chmod.  As root (permissions do not
    stop root) the command runs in a user and mount namespace where the folder
    is a read-only bind mount; without namespaces the test is skipped.
    """
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() != 0:
        locked.chmod(0o555)
        yield locked, lambda argv: argv
        locked.chmod(0o755)
        return
    wrap = lambda argv: ["unshare", "-rm", "sh", "-c", _BIND_READ_ONLY, "sh", str(locked), *argv]  # noqa: E731
    probe = [sys.executable, "-c", f"open({str(locked / 'x')!r}, 'w')"]
    if (
        shutil.which("unshare") is None
        or "Read-only" not in subprocess.run(wrap(probe), capture_output=True, text=True).stderr
    ):
        pytest.skip("running as root without user namespaces: no way to make a folder read-only")
    yield locked, wrap


def test_read_only_folder_gives_a_clear_error(read_only, small_config):
    locked, wrap = read_only
    src = small_config.parent / "vectors" / "src.vec"
    cases = [
        (["eval", str(small_config), "--out", str(locked), "--force"], f"cannot write {locked}: "),
        (["eval", str(small_config), "--out", str(locked / "new")], f"{locked / 'new'}: "),
        (["analyze", str(small_config), "--out", str(locked), "--force"], f"cannot write {locked}: "),
        (
            ["align", str(src), str(src), "--identical-seed", "--out", str(locked / "W.npy")],
            f"cannot write {locked}/W.npy: ",
        ),
    ]
    for argv, message in cases:
        t0 = time.perf_counter()
        proc = subprocess.run(wrap([sys.executable, "-c", CLI, *argv, "--quiet"]), capture_output=True, text=True)
        assert proc.returncode == 2, (argv, proc.stderr[-2000:])
        err = proc.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("taskspec-rs: error: ") and message in err[0], err
        assert err[0].endswith(READ_ONLY_REASONS), err
        assert time.perf_counter() - t0 < 60  # refused before training
    code = (
        "import sys, numpy as np; from taskspec_rs import save_vectors\n"
        "for name in ('v.vec', 'v.npy'):\n"
        "    try:\n"
        "        save_vectors(sys.argv[1] + '/' + name, ['a'], np.ones((1, 2), dtype=np.float32))\n"
        "    except OSError as exc:\n"
        "        print(exc.errno, exc.filename, exc.strerror)\n"
    )
    proc = subprocess.run(wrap([sys.executable, "-c", code, str(locked)]), capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith(("13 ", "30 ")) for line in lines), proc.stdout + proc.stderr
    assert [line.split()[1] for line in lines] == [f"{locked}/v.vec", f"{locked}/v.npy"]
    assert not list(locked.iterdir())


# ------------------------------------------------------------------ Ctrl-C


def test_ctrl_c_during_eval_exits_130_and_leaves_only_complete_files(tmp_path, small_config):
    out = tmp_path / "out"
    argv = ["eval", str(small_config), "--out", str(out), "--seeds", "2", "--methods", "clwe_fixed,clwe_opt_lp"]
    proc = _cli_popen(argv + ["--quiet"])
    _wait_for(out / "runs" / "seed0" / "clwe_fixed.json", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "taskspec-rs: interrupted"
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    for path in out.rglob("*.json"):
        json.loads(path.read_text())  # complete
    assert not (out / "results.json").exists()


# ------------------------------------------------------------------ helpers and fixtures


CLI = "import sys; from taskspec_rs.cli import main; sys.exit(main(sys.argv[1:]))"


def _cli(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, *argv], capture_output=True, text=True, timeout=300, **kwargs)


def _cli_popen(argv: list[str]) -> subprocess.Popen:
    def preexec() -> None:  # a shell may have started the tests with SIGINT ignored
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return subprocess.Popen(
        [sys.executable, "-c", CLI, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.perf_counter()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.perf_counter() - t0 < timeout, f"{path} did not appear"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def small_config(tmp_path_factory) -> Path:
    from taskspec_rs.demo import write_demo

    config = write_demo(tmp_path_factory.mktemp("demo") / "data")
    text = (
        config.read_text()
        .replace("epochs = 15", "epochs = 3")
        .replace("k_grid = [1, 2, 3, 5, 10, 20]", "k_grid = [1, 3]")
    )
    small = config.parent / "small.toml"
    small.write_text(text)
    return small
