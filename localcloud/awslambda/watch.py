"""Hot reload (``localcloud up --watch``): an edit to a function's source folder reaches the next
invocation without a redeploy.

The deploy runs with CDK's asset staging off (``cdk deploy --no-staging``), so each function's
``aws:asset:path`` metadata names its source folder itself rather than a copy in ``cdk.out``. The
watcher looks at those folders twice a second; when a file in one changes, the function's next
execution environment runs that folder as its task folder (the deployed zip is no longer used for it)
and the warm environments of the old code are retired, and the log says so. A change the folder alone
does not make (a dependency installed by bundling, a new layer, the handler's name) needs a deploy.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from localcloud.server import ACCOUNT, MOTO_LOCK, REGION

POLL_SECONDS = 0.5
IGNORED_FOLDERS = frozenset({"__pycache__", ".git", "node_modules", ".mypy_cache", ".pytest_cache"})


def function_sources() -> dict[str, Path]:
    """Each deployed function's source folder (function name -> folder), from the stacks' templates."""
    from moto.cloudformation.models import cloudformation_backends

    found: dict[str, Path] = {}
    with MOTO_LOCK:
        for stack in cloudformation_backends[ACCOUNT][REGION].stacks.values():
            resources = (getattr(stack, "template_dict", None) or {}).get("Resources") or {}
            for logical_id, resource in resources.items():
                path = (resource.get("Metadata") or {}).get("aws:asset:path")
                if (
                    resource.get("Type") != "AWS::Lambda::Function"
                    or not path
                    or not Path(path).is_absolute()
                ):
                    continue
                model = stack.resource_map._parsed_resources.get(logical_id)
                name = getattr(model, "function_name", None)
                if name and Path(path).is_dir():
                    found[name] = Path(path)
    return found


def snapshot(folder: Path) -> dict[str, float]:
    """Modification time of every file under ``folder`` (ignoring caches and installed packages)."""
    stamps: dict[str, float] = {}
    for root, folders, files in os.walk(folder):
        folders[:] = [f for f in folders if f not in IGNORED_FOLDERS]
        for name in files:
            path = os.path.join(root, name)
            try:
                stamps[path] = os.stat(path).st_mtime_ns / 1e9
            except OSError:
                continue
    return stamps


class SourceWatcher:
    """Reloads a function from its source folder when a file in it changes."""

    def __init__(self, reload: Callable[[str, Path], None], log: Callable[[str], Any] = print) -> None:
        self.reload = reload
        self.log = log
        self.seen: dict[str, tuple[Path, dict[str, float]]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="source-watcher", daemon=True)

    def start(self) -> None:
        self.scan()
        self.thread.start()

    def scan(self) -> list[str]:
        """One look at every function's folder; the functions reloaded."""
        reloaded = []
        for function, folder in function_sources().items():
            stamps = snapshot(folder)
            previous = self.seen.get(function)
            self.seen[function] = (folder, stamps)
            if previous is None or previous == (folder, stamps):
                continue
            changed = sorted(set(stamps.items()) ^ set(previous[1].items()))
            self.reload(function, folder)
            reloaded.append(function)
            names = ", ".join(sorted({os.path.relpath(path, folder) for path, _ in changed})[:3])
            self.log(f"[localcloud] reloaded {function} from {folder} ({names} changed): no redeploy needed")
        return reloaded

    def _run(self) -> None:
        while not self.stop.wait(POLL_SECONDS):
            try:
                self.scan()
            except Exception as error:  # a deploy in progress can leave moto half-updated
                self.log(f"[localcloud] source watcher: {error!r}")

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=2)
