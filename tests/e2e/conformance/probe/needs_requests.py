"""A handler whose module imports ``requests``: neither its asset nor Lambda's Python runtime provides it."""

from __future__ import annotations

from typing import Any

import requests


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    return {"requests": requests.__version__}
