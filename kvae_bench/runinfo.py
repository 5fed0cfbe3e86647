"""Provenance and small shared utilities: code version, seeding, device choice, atomic JSON."""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import os
import signal
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def git_commit() -> str:
    """The source tree's commit ("<sha>", "<sha>+dirty" with local changes to tracked files
    outside results/ and data/, which runs and reports write); outside git (a copy of the tree
    sent to another machine) the KVAE_BENCH_CODE_VERSION environment variable, else ""."""
    try:
        def git(*args):
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True,
                                  text=True, timeout=10, check=True).stdout.strip()
        sha = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                    ":(exclude)results", ":(exclude)data")
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("KVAE_BENCH_CODE_VERSION", "")
    return sha + ("+dirty" if dirty else "")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _finite(obj):
    """NaN and infinities become null: the JSON stays valid for every reader."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def temp_beside(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """A new empty file beside `path` for a writer to fill, named for its owner:
    `.NAME.partial-PID-XXXX<suffix>`. Partial files of writers that died (kill -9) are
    removed here, so they never pile up beside their target."""
    path = Path(path)
    remove_dead_partials(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.partial-{os.getpid()}-", suffix=suffix,
                               dir=path.parent)
    _PARTIALS.add(tmp)
    os.close(fd)
    return Path(tmp)


_PARTIALS: set[str] = set()  # this process's partial files not yet published or discarded


def discard_partial(tmp: str | os.PathLike) -> None:
    """Remove a partial file that will not be published."""
    Path(tmp).unlink(missing_ok=True)
    _PARTIALS.discard(str(tmp))


def remove_own_partials() -> None:
    """Remove every partial file of this process: called when a signal stops the command,
    before unwinding (an exception raised by a signal handler can be swallowed where Python
    cannot raise it, e.g. in a finaliser; the files must go regardless)."""
    for tmp in list(_PARTIALS):
        discard_partial(tmp)


_STOPPED: list[int] = []  # the signal that asked this process to stop, once one has


def request_stop(signum: int) -> None:
    """Remember that a signal asked this process to stop (see raise_if_stopped)."""
    _STOPPED.append(signum)


def clear_stop() -> None:
    """Forget earlier stop requests (a new command in the same process)."""
    _STOPPED.clear()


def raise_if_stopped() -> None:
    """Unwind again where a signal asked to stop but its exception was swallowed (raised in
    a finaliser): KeyboardInterrupt for Ctrl-C, SystemExit for SIGTERM. Long loops that
    write files call it, so they never go on writing after their partial files are gone."""
    if _STOPPED:
        signum = _STOPPED[0]
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)


def remove_dead_partials(path: str | os.PathLike) -> list[Path]:
    """Delete `.NAME.partial-PID-*` files beside path whose process no longer runs."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.partial-*"):
        pid = tmp.name[len(path.name) + len(".partial-") + 1:].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def publish(tmp: str | os.PathLike, path: str | os.PathLike, overwrite: bool = True) -> None:
    """Move a finished temporary file to `path` (made readable, 0644). Without overwrite the
    move fails with FileExistsError if `path` appeared meanwhile (os.link is atomic), so two
    writers racing for one new file cannot both succeed."""
    os.chmod(tmp, 0o644)
    if overwrite:
        os.replace(tmp, path)
        _PARTIALS.discard(str(tmp))
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} appeared while this command wrote it (another "
                              "process?): left as it is; pass --overwrite to replace it") from None
    discard_partial(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp"):
    """Yield a temporary path beside `path` to write to (see temp_beside); on success it
    replaces `path` (see publish), on any error it is removed: never a half-written file at
    `path`. The suffix may name the format for writers that need it (".npz", ".png")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path, suffix)
    try:
        yield tmp
        publish(tmp, path)
    except BaseException:
        discard_partial(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Write JSON atomically (see atomic_path). NaN is written as null."""
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n")


def machine() -> dict:
    """Where a run executes: host name, CPU count and the GPU's name ("" without CUDA)."""
    import socket

    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name()
    except ImportError:
        pass
    return {"host": socket.gethostname(), "cpus": os.cpu_count() or 0, "gpu": gpu}


def versions() -> dict[str, str]:
    """Versions of what a result depends on."""
    import platform

    import numpy

    out = {"python": platform.python_version(), "numpy": numpy.__version__}
    try:
        import torch

        out["torch"] = torch.__version__
        out["cuda"] = torch.version.cuda or ""
    except ImportError:
        pass
    return out


def choose_device(name: str = "auto") -> str:
    """"auto": CUDA when present, else CPU; "cpu", "cuda", "cuda:N" are checked."""
    import torch

    from kvae_bench.errors import UserError

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device here; use --device cpu or auto")
    try:
        torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    return name
