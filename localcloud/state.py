"""Per-user files a running local cloud shares with the command line (the dashboard's key).

They live in ``$LOCALCLOUD_STATE_DIR``, else ``$XDG_STATE_HOME/localcloud``, else
``~/.local/state/localcloud``: a directory only the user can enter, files only the user can read.
"""

from __future__ import annotations

import os
from pathlib import Path

from localcloud.server import LocalCloudError


def state_dir() -> Path:
    configured = os.environ.get("LOCALCLOUD_STATE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "localcloud"


def dashboard_key_file(port: int) -> Path:
    """One file per dashboard port: clouds running side by side (tests, demos) keep their own."""
    return state_dir() / f"dashboard-{port}.key"


def save_secret(path: Path, value: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    # Created 0600 (never readable by others, not even for a moment); a planted link is not followed.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(value + "\n")


def read_dashboard_key(port: int) -> str:
    path = dashboard_key_file(port)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise LocalCloudError(
            f"no dashboard key for port {port} in {path.parent}: is `make up` running "
            "(with that --dashboard-port)?"
        ) from None
    except OSError as error:
        raise LocalCloudError(f"cannot read {path}: {error.strerror}") from None
