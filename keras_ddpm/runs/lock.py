"""One writer per run folder: a lock file holding the writer's PID and host.

A second writer (`keras-ddpm train`, or a Python `fit` inside `run_lock`) on a locked folder
stops with `RunLocked`, one line naming the holder. A lock
left by a process that no longer runs (killed, or the machine restarted) is
stale and taken over. No TensorFlow here.
"""

import contextlib
import json
import os
import socket

from keras_ddpm.runs import LOCK_FILE


class RunLocked(RuntimeError):
    """Another live process holds the run folder."""


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def _holder(path):
    """The lock's `{"pid", "host"}`, or `None` if it cannot be read (being written, damaged)."""
    try:
        with open(path, encoding="utf-8") as file:
            holder = json.load(file)
        return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None
    except (OSError, ValueError):
        return None


def _write(path, mine):
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as file:
        json.dump(mine, file)
    return tmp


def _create(tmp, path):
    """Puts the lock in place whole, or raises FileExistsError if one is there."""
    try:
        os.link(tmp, path)  # atomic, and a reader never sees a half-written lock
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file, open(tmp, encoding="utf-8") as source:
            file.write(source.read())


@contextlib.contextmanager
def run_lock(folder):
    """Holds `folder/.lock` while the block runs.

    Raises:
        RunLocked: another live process on this host holds the folder, or one
            on another host does (its liveness cannot be checked from here).

    Example:

    ```python
    with keras_ddpm.runs.lock.run_lock("runs/mine"):
        model.fit(dataset, epochs=10, callbacks=[RunBackup("runs/mine/backup")])
    ```
    """
    path = os.path.join(folder, LOCK_FILE)
    mine = {"pid": os.getpid(), "host": socket.gethostname()}
    tmp = _write(path, mine)
    try:
        try:
            _create(tmp, path)
        except FileExistsError:
            holder = _holder(path)
            if holder is not None and holder != mine:
                same_host = holder.get("host") == mine["host"]
                if not same_host or _alive(holder["pid"]):
                    where = "" if same_host else f" on {holder.get('host')}"
                    raise RunLocked(
                        f"{folder!r} is being written by another process (PID "
                        f"{holder['pid']}{where}); wait for it, or write to another folder "
                        f"(if that process is gone, delete {path!r})"
                    ) from None
            os.replace(tmp, path)  # a stale lock (its process is gone): taken over
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    try:
        yield path
    finally:
        if _holder(path) == mine:
            os.remove(path)
