"""Shared plumbing: Ref/GetAtt wiring and CloudFormation-to-API property conversion."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar

from moto.cloudformation.exceptions import UnformattedGetAttTemplateException


class CfnResource:
    """Mixin for the registered models.

    Each model must also list ``CloudFormationModel`` as a direct base: moto finds models through
    ``CloudFormationModel.__subclasses__()``, which only returns direct subclasses.
    """

    TYPE: ClassVar[str]
    NAME_PROPERTY: ClassVar[str] = ""  # the property CloudFormation names the resource by, if any
    REF: ClassVar[str] = "name"
    ATTRIBUTES: ClassVar[dict[str, str]] = {}

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.TYPE

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.NAME_PROPERTY

    @property
    def physical_resource_id(self) -> str:
        return str(getattr(self, self.REF))

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name not in self.ATTRIBUTES:
            raise UnformattedGetAttTemplateException()
        return getattr(self, self.ATTRIBUTES[attribute_name])

    def is_created(self) -> bool:
        return True


def properties(cloudformation_json: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the resolved Properties, so moto's copy of the template is never mutated."""
    return json.loads(json.dumps(cloudformation_json.get("Properties") or {}, default=_opaque))


def _opaque(value: Any) -> Any:
    # Ref to a moto model without physical_resource_id (e.g. ApiGateway::Deployment) yields the model itself
    return getattr(value, "id", str(value))


def to_json(value: Any) -> str:
    """CloudFormation accepts policies as objects or strings; the APIs want strings."""
    return value if isinstance(value, str) else json.dumps(value)


def to_bool(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    return value if isinstance(value, bool) else str(value).lower() == "true"


def to_int(value: Any) -> int | None:
    return None if value is None else int(value)


def to_float(value: Any) -> float | None:
    return None if value is None else float(value)


def to_epoch(value: Any) -> float | None:
    """ISO 8601 (CloudFormation) to epoch seconds (what moto's backends store and serialise)."""
    if value is None or isinstance(value, int | float):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def tag_map(tags: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tags or ()}


def compact(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def changed(old: Mapping[str, Any], new: Mapping[str, Any], *keys: str) -> bool:
    """Whether an update touches a property whose change means replacement in CloudFormation."""
    return any(old.get(key) != new.get(key) for key in keys)


def physical_name(resource_name: str, limit: int) -> str:
    """moto generates ``<stack>-<logical id>-<random>``; keep the random tail when the API caps the length."""
    return resource_name if len(resource_name) <= limit else resource_name[: limit - 13] + resource_name[-13:]
