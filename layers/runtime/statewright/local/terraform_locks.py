"""The lock a stopped local Terraform run may leave on its state file, and who may
release it (docs/local.md, "Stopped runs and locks").

Terraform's ``local`` backend locks ``terraform.tfstate`` with a POSIX record lock
(``fcntl``) and describes the holder in ``.terraform.tfstate.lock.info`` (JSON: ``ID``,
``Operation``, ``Who``, ``Created``...), removing that file when it unlocks. A run
killed by SIGKILL loses its record lock with its process but leaves the info file.

When the executor has stopped a run and its processes are gone, it notes the lock that
run left — only when the info file was written after the run started and nobody holds
the record lock, i.e. the holder was that run — in ``stopped-run.json`` beside the
state. The next run on the state removes the info file only when it still names that
lock (nobody locked the state since) and nobody holds the record lock; a lock naming
anyone else is left alone, and Terraform waits for it (``-lock-timeout``) or names it."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATE_FILE = "terraform.tfstate"
LOCK_INFO_FILE = f".{STATE_FILE}.lock.info"
STOPPED_RUN_FILE = "stopped-run.json"


def lock_info(state_dir: Path) -> dict[str, Any] | None:
    """The lock info Terraform wrote beside the state, or None (absent or unreadable)."""
    try:
        info = json.loads((state_dir / LOCK_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("ID"), str) else None


def is_locked(state_dir: Path) -> bool:
    """Whether a live process holds Terraform's record lock on the state file."""
    try:
        fd = os.open(state_dir / STATE_FILE, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def note_stopped_run(state_dir: Path, run_id: str, started: float) -> str | None:
    """After a stopped run's processes are gone: remember the lock it left (the info
    file written since ``started``, a ``time.time()``, with no live holder), for the
    next run to release. Returns the lock's ID, or None when it left none."""
    info = lock_info(state_dir)
    if info is None:
        return None
    try:
        written = (state_dir / LOCK_INFO_FILE).stat().st_mtime
    except OSError:
        return None
    if written < started or is_locked(state_dir):
        return None  # not that run's lock
    note = {"run_id": run_id, "lock_id": info["ID"]}
    (state_dir / STOPPED_RUN_FILE).write_text(json.dumps(note), encoding="utf-8")
    return str(info["ID"])


def release_stopped_lock(state_dir: Path) -> bool:
    """Before a run: remove the lock a stopped run left on this state, if the lock is
    still that run's (same ID, no live holder). True when a lock was released."""
    noted = state_dir / STOPPED_RUN_FILE
    try:
        note = json.loads(noted.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    noted.unlink(missing_ok=True)
    info = lock_info(state_dir)
    if info is None or not isinstance(note, dict) or info["ID"] != note.get("lock_id"):
        return False
    if is_locked(state_dir):
        return False
    (state_dir / LOCK_INFO_FILE).unlink(missing_ok=True)
    log.info(
        "released Terraform lock %s on %s, left by stopped run %s",
        info["ID"],
        state_dir,
        note.get("run_id"),
    )
    return True
