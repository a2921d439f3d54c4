"""API Gateway mapping templates: Velocity (VTL, rendered by airspeed) with API Gateway's variables.

``$input`` (``body``, ``json(path)``, ``path(path)``, ``params()`` / ``params(name)``), ``$util``
(``escapeJavaScript``, ``urlEncode``, ``urlDecode``, ``base64Encode``, ``base64Decode``,
``parseJson``), ``$context`` and ``$stageVariables``, as API Gateway's "Variables for data
transformations" describes them. JSONPath expressions are the simple ones templates use: ``$``,
``$.a.b``, ``$.a[0]``, ``$['a']``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

import airspeed

STAGE_VARIABLE = re.compile(r"\$\{stageVariables\.(\w+)\}")
PATH_PART = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]")


class TemplateError(Exception):
    """A template that cannot be rendered (API Gateway answers 500 for it)."""


def select(document: Any, path: str) -> Any:
    """The value at a simple JSONPath; None where the path leads nowhere."""
    value = document
    for name, index, quoted in PATH_PART.findall(path.strip()[1:]):
        key = name or quoted
        if key and isinstance(value, dict):
            value = value.get(key)
        elif index and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            return None
    return value


class Input:
    """``$input``: the payload (the method request's, or the integration response's) and the request's
    parameters."""

    def __init__(self, body: str, params: Mapping[str, Mapping[str, str]]) -> None:
        self.body = body
        self._params = params

    def _document(self) -> Any:
        try:
            return json.loads(self.body) if self.body.strip() else {}
        except ValueError as error:
            raise TemplateError(f"the body is not JSON: {error}") from error

    def json(self, path: str) -> str:
        return json.dumps(select(self._document(), path))

    def path(self, path: str) -> Any:
        return select(self._document(), path)

    def params(self, name: str | None = None) -> Any:
        """All parameters (``path``, ``querystring``, ``header``), or one by name: path first, then
        query string, then header, as API Gateway looks it up."""
        if name is None:
            return {kind: dict(values) for kind, values in self._params.items()}
        for kind in ("path", "querystring", "header"):
            values = self._params.get(kind) or {}
            found = values.get(name) if kind != "header" else header_value(values, name)
            if found is not None:
                return found
        return ""


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header by its name in any case, as HTTP names compare."""
    return next((value for key, value in headers.items() if key.lower() == name.lower()), None)


def with_stage_variables(text: str, variables: Mapping[str, str] | None) -> str:
    """``${stageVariables.name}`` in an integration's URI replaced by the stage's value ("" if unset)."""
    return STAGE_VARIABLE.sub(lambda m: (variables or {}).get(m[1], ""), text)


class Util:
    """``$util``."""

    @staticmethod
    def escapeJavaScript(value: Any) -> str:
        return json.dumps(str(value))[1:-1].replace("'", "\\'")

    @staticmethod
    def urlEncode(value: Any) -> str:
        return quote(str(value), safe="-_.~")

    @staticmethod
    def urlDecode(value: Any) -> str:
        return unquote(str(value))

    @staticmethod
    def base64Encode(value: Any) -> str:
        return base64.b64encode(str(value).encode()).decode()

    @staticmethod
    def base64Decode(value: Any) -> str:
        return base64.b64decode(str(value)).decode()

    @staticmethod
    def parseJson(value: Any) -> Any:
        return json.loads(str(value))


def render(
    template: str,
    *,
    body: str,
    params: Mapping[str, Mapping[str, str]],
    context: Mapping[str, Any],
    stage_variables: Mapping[str, str] | None,
) -> str:
    """A mapping template applied to ``body``."""
    namespace = {
        "input": Input(body, params),
        "util": Util(),
        "context": dict(context),
        "stageVariables": dict(stage_variables or {}),
    }
    try:
        return str(airspeed.Template(template).merge(namespace))
    except TemplateError:
        raise
    except Exception as error:  # airspeed's syntax and evaluation errors
        raise TemplateError(f"the mapping template failed: {error}") from error
