"""Where moto's CloudFormation must behave as CloudFormation does for the CDK CLI's deploys to work,
and the resource types moto lacks (``resource_types``)."""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any
from urllib.parse import urlparse


def apply() -> None:
    """Install the patches and register the resource types (before moto builds its model map)."""
    from localcloud.cloudformation import resource_types

    resource_types.register()
    # Types moto cannot create are listed by `status` (unsupported_resources) instead.
    logging.getLogger("moto").addFilter(
        lambda record: not record.getMessage().startswith("No Moto CloudFormation")
    )
    warnings.filterwarnings("ignore", message="Tried to parse .* not supported")
    _template_urls_on_any_endpoint()
    _change_sets_update_the_stack_template()
    _depends_on_is_honoured()
    _previous_ssm_parameter_values()


def _template_urls_on_any_endpoint() -> None:
    """The CDK CLI passes template URLs on the local endpoint (``http://127.0.0.1:4566/bucket/key``);
    moto only reads path-style URLs from ``localhost`` or ``s3.amazonaws.com``."""
    from moto.cloudformation import responses, utils

    original = utils.get_stack_from_s3_url

    def get_stack_from_s3_url(template_url: str, account_id: str, partition: str) -> str:
        parsed = urlparse(template_url)
        if parsed.hostname in ("127.0.0.1", "localhost", "::1"):
            template_url = f"http://localhost{parsed.path}"
        return original(template_url, account_id=account_id, partition=partition)

    utils.get_stack_from_s3_url = get_stack_from_s3_url
    responses.get_stack_from_s3_url = get_stack_from_s3_url


def _change_sets_update_the_stack_template() -> None:
    """How the CDK CLI deploys, done as CloudFormation does it: ``ExecuteChangeSet`` replaces the
    stack's template (moto kept the old one: no outputs, updates diffed against nothing) and then
    removes the stack's change sets; a change set that does not exist is ``ChangeSetNotFound``
    (moto's ``ValidationError`` keeps the CLI waiting forever for a deletion on redeploy)."""
    from moto.cloudformation.exceptions import CloudFormationError
    from moto.cloudformation.models import CloudFormationBackend

    class ChangeSetNotFound(CloudFormationError):
        code = "ChangeSetNotFound"

    original_execute = CloudFormationBackend.execute_change_set

    def find(self: Any, change_set_name: str) -> Any:
        if change_set_name in self.change_sets:  # an ARN
            return self.change_sets[change_set_name]
        for change_set in self.change_sets.values():
            if change_set.change_set_name == change_set_name:
                return change_set
        raise ChangeSetNotFound(f"ChangeSet [{change_set_name}] does not exist")

    def delete_change_set(self: Any, change_set_name: str) -> None:
        with contextlib.suppress(ChangeSetNotFound):  # deleting what is gone succeeds, as in CloudFormation
            del self.change_sets[find(self, change_set_name).change_set_id]

    def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = find(self, change_set_name)
        stack = self.stacks[change_set.stack_id]
        try:
            original_execute(self, change_set_name, stack_name)
        except Exception as error:  # recorded as CloudFormation does, so the deploy's failure has a reason
            stack._add_stack_event(f"{change_set.change_set_type}_FAILED", resource_status_reason=repr(error))
            stack.status = (
                "ROLLBACK_COMPLETE" if change_set.change_set_type == "CREATE" else "UPDATE_ROLLBACK_COMPLETE"
            )
            raise
        stack._parse_template()
        stack.description = stack.template_dict.get("Description")
        stack.output_map = stack._create_output_map()
        for key in [k for k, c in self.change_sets.items() if c.stack_id == stack.stack_id]:
            del self.change_sets[key]

    CloudFormationBackend.describe_change_set = find  # type: ignore[method-assign]
    CloudFormationBackend.delete_change_set = delete_change_set  # type: ignore[method-assign]
    CloudFormationBackend.execute_change_set = execute_change_set  # type: ignore[method-assign]


def _depends_on_is_honoured() -> None:
    """CloudFormation creates a resource's ``DependsOn`` first; moto's change sets create in template
    order (a CDK RestApi's Deployment before its Methods fails)."""
    from moto.cloudformation.parsing import ResourceMap

    original = ResourceMap.__getitem__

    def getitem(self: Any, key: str) -> Any:
        if key not in self._parsed_resources:
            depends_on = (self._resource_json_map.get(key) or {}).get("DependsOn") or []
            for dependency in [depends_on] if isinstance(depends_on, str) else depends_on:
                getitem(self, dependency)
        return original(self, key)

    ResourceMap.__getitem__ = getitem  # type: ignore[method-assign]


def _previous_ssm_parameter_values() -> None:
    """On update the CDK CLI passes ``UsePreviousValue`` for the bootstrap version parameter (an SSM
    parameter type); moto hands the previously resolved value back as if it were the SSM path."""
    from moto.cloudformation.parsing import ResourceMap
    from moto.ssm.models import ssm_backends

    original = ResourceMap.parse_ssm_parameter

    def parse_ssm_parameter(self: Any, value: str, value_type: str) -> Any:
        if (
            not str(value).startswith("/")
            and ssm_backends[self._account_id][self._region_name].get_parameter(value) is None
        ):
            return value  # already resolved
        return original(self, value, value_type)

    ResourceMap.parse_ssm_parameter = parse_ssm_parameter  # type: ignore[method-assign]
