"""Writes that a kill cannot truncate: a temporary name in the same folder, then a rename.

`os.replace` within one folder is atomic on POSIX and Windows: a reader (or a
re-run after SIGKILL) sees either the old file or the complete new one, never a
mix. A kill leaves at most a `.partial-PID-*` file beside the target, which
the next write of that target (`remove_stale_partials`) or `remove_partials` clears.
"""

import contextlib
import json
import os
import shutil

PARTIAL_PREFIX = ".partial-"


def _fsync_folder(folder):
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; the rename is still atomic.
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _fsync_file(path):
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def _remove(path):
    """Removes a partial file or folder, whatever is left of it."""
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.remove(path)


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # another user's process, or no signals here: assume alive
        return True
    return True


def remove_stale_partials(path):
    """Removes the partial writes of `path` left by killed processes (`.partial-PID-name`).

    Called before each atomic write of `path`, so that a re-run clears what its
    killed predecessor left; a live process's partial (a concurrent write) stays.
    """
    folder, name = os.path.split(os.fspath(path))
    folder = folder or "."
    if not os.path.isdir(folder):
        return
    for entry in os.listdir(folder):
        pid, _, rest = entry[len(PARTIAL_PREFIX):].partition("-")
        if entry.startswith(PARTIAL_PREFIX) and rest == name and pid.isdigit() and (
            int(pid) != os.getpid() and not _process_alive(int(pid))
        ):
            _remove(os.path.join(folder, entry))


def partial_path(path):
    """The temporary name of `path` while it is written: same folder, same extension(s)."""
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f"{PARTIAL_PREFIX}{os.getpid()}-{name}")


@contextlib.contextmanager
def atomic_write(path):
    """Yields a temporary path to write; on success it replaces `path` in one rename.

    The temporary name keeps `path`'s extension, so writers that check it
    (`.keras`, `.weights.h5`, `.png`) accept it. On an exception the temporary
    file or folder is removed and `path` is untouched.

    Example:

    ```python
    with atomic_write("runs/digits/model.keras") as tmp:
        model.save(tmp)
    ```
    """
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    remove_stale_partials(path)
    tmp = partial_path(path)
    try:
        yield tmp
        if os.path.isfile(tmp):
            _fsync_file(tmp)
        elif os.path.isdir(tmp):  # a folder (a checkpoint, a SavedModel): every file in it
            for folder_path, _, names in os.walk(tmp):
                for name in names:
                    _fsync_file(os.path.join(folder_path, name))
        os.replace(tmp, path)
        _fsync_folder(folder)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.remove(tmp)


def replaceable_path(filepath, overwrite=True):
    """`filepath` as a str when it can be written atomically here, else `None`.

    That is a local path (not a URL such as `gs://`) that may be replaced;
    `overwrite=False` onto an existing file is left to the caller's own
    refusal.
    """
    if not isinstance(filepath, (str, os.PathLike)):
        return None
    path = os.fspath(filepath)
    if "://" in path or (not overwrite and os.path.exists(path)):
        return None
    return path


def remove_partials(folder):
    """Removes what writes killed mid-way left in `folder` (`.partial-*` entries)."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.startswith(PARTIAL_PREFIX):
            _remove(os.path.join(folder, name))


def write_json(path, value):
    """Writes `value` as indented, key-sorted JSON to `path` in one rename."""
    with atomic_write(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as file:
            json.dump(value, file, indent=2, sort_keys=True)
            file.write("\n")
