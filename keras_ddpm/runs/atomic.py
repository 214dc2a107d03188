"""Writes that a kill cannot truncate: a temporary name in the same folder, then a rename.

`os.replace` within one folder is atomic on POSIX and Windows: a reader (or a
re-run after SIGKILL) sees either the old file or the complete new one, never a
mix. A kill leaves at most a `.partial-*` file beside the target, which
`remove_partials` clears.
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
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.remove(path)


def write_json(path, value):
    """Writes `value` as indented, key-sorted JSON to `path` in one rename."""
    with atomic_write(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as file:
            json.dump(value, file, indent=2, sort_keys=True)
            file.write("\n")
