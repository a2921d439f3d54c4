"""Where moto's CloudFormation must behave as CloudFormation does for the CDK CLI's deploys to work,
and the resource types moto lacks (``resource_types``)."""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from typing import Any
from urllib.parse import urlparse

_applied: list[bool] = []


def apply() -> None:
    """Install the patches and register the resource types (before moto builds its model map); once."""
    from localcloud.cloudformation import custom_resources, resource_types

    if _applied:
        return
    _applied.append(True)

    resource_types.register()
    # Types moto cannot create are listed by `status` (unsupported_resources) instead.
    logging.getLogger("moto").addFilter(
        lambda record: not record.getMessage().startswith("No Moto CloudFormation")
    )
    warnings.filterwarnings("ignore", message="Tried to parse .* not supported")
    _template_urls_on_any_endpoint()
    _change_sets_update_the_stack_template()
    _depends_on_is_honoured()
    _stacks_are_deleted_dependents_first()
    _outputs_of_skipped_resources_are_left_out()
    _generated_names_fit_their_service()
    _previous_ssm_parameter_values()
    custom_resources.apply()
    _unsupported_types_stand_in()
    _methods_without_an_integration_method()
    _log_group_arns_as_cloudformation_gives_them()


def _log_group_arns_as_cloudformation_gives_them() -> None:
    """``Fn::GetAtt LogGroup.Arn`` ends in ``:*`` on AWS (the ARN that covers the group's streams,
    which CDK's grants name); moto gave the bare group ARN, which matches no stream."""
    from moto.logs.models import LogGroup

    attribute = LogGroup.get_cfn_attribute

    def get_cfn_attribute(self: Any, attribute_name: str) -> Any:
        value = attribute(self, attribute_name)
        return f"{value}:*" if attribute_name == "Arn" else value

    LogGroup.get_cfn_attribute = get_cfn_attribute  # type: ignore[method-assign]


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
    (moto's ``ValidationError`` keeps the CLI waiting forever for a deletion on redeploy). A change set
    named without its ARN is the one of the stack named beside it: the CDK CLI names every change set
    ``cdk-deploy-change-set``, and moto took the first of any stack (a failed stack's, left behind)."""
    from moto.cloudformation.exceptions import CloudFormationError
    from moto.cloudformation.models import CloudFormationBackend
    from moto.cloudformation.responses import CloudFormationResponse
    from moto.core.responses import ActionResult, EmptyResult

    class ChangeSetNotFound(CloudFormationError):
        code = "ChangeSetNotFound"

    original_execute = CloudFormationBackend.execute_change_set

    def find(self: Any, change_set_name: str, stack_name: str | None = None) -> Any:
        if change_set_name in self.change_sets:  # an ARN
            return self.change_sets[change_set_name]
        for change_set in self.change_sets.values():
            stack = self.stacks.get(change_set.stack_id)
            of_stack = stack_name is None or stack_name in (change_set.stack_id, getattr(stack, "name", None))
            if change_set.change_set_name == change_set_name and of_stack:
                return change_set
        raise ChangeSetNotFound(f"ChangeSet [{change_set_name}] does not exist")

    def delete_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        with contextlib.suppress(ChangeSetNotFound):  # deleting what is gone succeeds, as in CloudFormation
            del self.change_sets[find(self, change_set_name, stack_name).change_set_id]

    def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = find(self, change_set_name, stack_name)
        stack = self.stacks[change_set.stack_id]
        try:
            original_execute(self, change_set.change_set_id, stack_name)
        except Exception as error:
            # As CloudFormation: ExecuteChangeSet succeeds, and the failure is the stack's, with its
            # reason in the events the CLI reads (raised, the service's own error reached the CLI as an
            # unreadable body of another protocol).
            reason = getattr(error, "reason", None) or (
                f"{getattr(error, 'code', None) or type(error).__name__}: {getattr(error, 'message', None) or error}"
            )
            stack._add_stack_event(f"{change_set.change_set_type}_FAILED", resource_status_reason=reason)
            stack.status = (
                "ROLLBACK_COMPLETE" if change_set.change_set_type == "CREATE" else "UPDATE_ROLLBACK_COMPLETE"
            )
            stack.status_reason = reason
            change_set.execution_status = "EXECUTE_FAILED"
            return
        stack._parse_template()
        stack.description = stack.template_dict.get("Description")
        stack.output_map = stack._create_output_map()
        for key in [k for k, c in self.change_sets.items() if c.stack_id == stack.stack_id]:
            del self.change_sets[key]

    # moto's responses drop the StackName of DescribeChangeSet and DeleteChangeSet.
    def describe_change_set_response(self: Any) -> Any:
        named = self._get_param("ChangeSetName"), self._get_param("StackName")
        return ActionResult(find(self.cloudformation_backend, *named))

    def delete_change_set_response(self: Any) -> Any:
        delete_change_set(
            self.cloudformation_backend, self._get_param("ChangeSetName"), self._get_param("StackName")
        )
        return EmptyResult()

    CloudFormationBackend.describe_change_set = find  # type: ignore[method-assign]
    CloudFormationBackend.delete_change_set = delete_change_set  # type: ignore[method-assign]
    CloudFormationBackend.execute_change_set = execute_change_set  # type: ignore[method-assign]
    CloudFormationResponse.describe_change_set = describe_change_set_response  # type: ignore[method-assign]
    CloudFormationResponse.delete_change_set = delete_change_set_response  # type: ignore[method-assign]


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


def references(value: Any) -> set[str]:
    """The logical ids a piece of template names: ``Ref``, ``Fn::GetAtt`` and ``${...}`` in ``Fn::Sub``."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                found.add(item)
            elif key == "Fn::GetAtt":
                found.add(item.split(".", 1)[0] if isinstance(item, str) else item[0])
            elif key == "Fn::Sub":
                template = item if isinstance(item, str) else item[0]
                found |= {name.split(".", 1)[0] for name in re.findall(r"\$\{([^!}][^}]*)\}", template)}
                found |= references(item[1:] if isinstance(item, list) else [])
            else:
                found |= references(item)
    return found


def creation_order(resources: dict[str, Any]) -> list[str]:
    """The logical ids, each after every resource it depends on (``DependsOn`` and references)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in order or logical_id in visiting or logical_id not in resources:
            return
        visiting.add(logical_id)
        resource = resources[logical_id]
        depends_on = resource.get("DependsOn") or []
        for dependency in sorted(
            {*([depends_on] if isinstance(depends_on, str) else depends_on), *references(resource)}
        ):
            visit(dependency)
        order.append(logical_id)

    for logical_id in resources:
        visit(logical_id)
    return order


def _stacks_are_deleted_dependents_first() -> None:
    """CloudFormation deletes a stack's resources in reverse dependency order; moto deleted them in no
    order, so a custom resource's function could be gone before its Delete request."""
    from moto.cloudformation.parsing import ResourceMap

    def delete(self: Any) -> None:
        pending = [
            logical_id
            for logical_id in reversed(creation_order(self._resource_json_map))
            if self._resource_json_map[logical_id].get("DeletionPolicy") != "Retain"
        ]
        failures: dict[str, Exception] = {}
        for _ in range(2):  # a second pass for what failed on something deleted after it
            failures = {}
            for logical_id in pending:
                resource = self._parsed_resources.get(logical_id)
                if resource is None or isinstance(resource, str):
                    continue
                try:
                    self._delete_resource(resource, self._resource_json_map[logical_id])
                    self._parsed_resources.pop(logical_id)
                except Exception as error:
                    failures[logical_id] = error
            if not failures:
                return
            pending = list(failures)
        raise next(iter(failures.values()))

    ResourceMap.delete = delete  # type: ignore[method-assign]


def _outputs_of_skipped_resources_are_left_out() -> None:
    """An output whose value reads a resource the local cloud could not create (a type it lacks, listed
    by ``status``) is left out of the stack's outputs; moto failed every DescribeStacks that included
    the stack, for every caller, from then on."""
    from moto.cloudformation.exceptions import ValidationError
    from moto.cloudformation.parsing import OutputMap, ResourceMap, clean_json

    from localcloud.cloudformation.resource_types import is_supported

    original = OutputMap.__getitem__

    def getitem(self: Any, key: str) -> Any:
        value = (self._output_json_map.get(key) or {}).get("Value")
        resources = self._resource_map._resource_json_map
        if any(
            name in resources and not is_supported(resources[name].get("Type", ""))
            for name in references(value)
        ):
            return None  # it would read a stand-in (_unsupported_types_stand_in), not a resource
        try:
            return original(self, key)
        except ValidationError:
            return None  # moto's own value for an output it cannot resolve (a false Condition)

    def exports(self: Any) -> list[Any]:
        from moto.cloudformation.parsing import Export

        found = []
        for output in (self._output_json_map or {}).values():
            if output.get("Export"):
                with contextlib.suppress(ValidationError):
                    name = clean_json(output["Export"].get("Name"), self._resource_map)
                    found.append(
                        Export(self._stack_id, name, clean_json(output.get("Value"), self._resource_map))
                    )
        return found

    original_validate = ResourceMap.validate_outputs

    def validate_outputs(self: Any) -> None:
        """moto's check of outputs' attributes stopped at a type it lacks (AttributeError on None)."""

        def readable(output: Any) -> bool:
            read = output.get("Value") if isinstance(output, dict) else None
            if not (isinstance(read, dict) and "Fn::GetAtt" in read):
                return True
            resource = self._resource_json_map.get(read["Fn::GetAtt"][0]) or {}
            return "Type" not in resource or is_supported(resource["Type"])

        outputs = self._template.get("Outputs")
        if outputs:
            self._template["Outputs"] = {key: value for key, value in outputs.items() if readable(value)}
        try:
            original_validate(self)
        finally:
            if outputs:
                self._template["Outputs"] = outputs

    OutputMap.__getitem__ = getitem  # type: ignore[method-assign]
    OutputMap.exports = property(exports)  # type: ignore[assignment,method-assign]
    ResourceMap.validate_outputs = validate_outputs  # type: ignore[method-assign]


# The longest name each service takes, for the types whose name CloudFormation generates when the
# template gives none (moto shortens only S3 buckets and load balancers).
NAME_LIMITS = {
    "AWS::StepFunctions::StateMachine": 80,
    "AWS::StepFunctions::Activity": 80,
    "AWS::Lambda::Function": 64,
    "AWS::SQS::Queue": 80,
    "AWS::SNS::Topic": 256,
    "AWS::IAM::Role": 64,
    "AWS::IAM::User": 64,
    "AWS::IAM::ManagedPolicy": 128,
    "AWS::IAM::InstanceProfile": 128,
    "AWS::Events::Rule": 64,
    "AWS::Events::EventBus": 256,
    "AWS::Events::Connection": 64,
    "AWS::Events::ApiDestination": 64,
    "AWS::Events::Archive": 48,
    "AWS::Pipes::Pipe": 64,
    "AWS::Kinesis::Stream": 128,
    "AWS::KinesisFirehose::DeliveryStream": 64,
    "AWS::DynamoDB::Table": 255,
    "AWS::Logs::LogGroup": 512,
    "AWS::SSM::Parameter": 1011,
    "AWS::ECR::Repository": 256,
}


def _generated_names_fit_their_service() -> None:
    """A generated name is cut, keeping its random tail, to what its service accepts, as CloudFormation
    does: ``<stack>-<logical id>-<random>`` of a long stack passed Step Functions' 80 characters."""
    from moto.cloudformation import parsing

    from localcloud.cloudformation.resource_types._base import physical_name

    original = parsing.generate_resource_name

    def generate_resource_name(resource_type: str, stack_name: str, logical_id: str) -> str:
        name = original(resource_type, stack_name, logical_id)
        limit = NAME_LIMITS.get(resource_type)
        return physical_name(name, limit) if limit else name

    parsing.generate_resource_name = generate_resource_name


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


def _unsupported_types_stand_in() -> None:
    """A resource of a type the local cloud cannot create (listed by ``up`` and ``status``) gets a stand-in:
    nothing is created, but ``Ref`` and ``Fn::GetAtt`` of it resolve (to its generated name, and an ARN
    of its service's shape for ``Arn`` attributes), so the resources that name it are still created.
    moto failed the whole stack ("Fn::GetAtt references undefined resource"), e.g. an EventBridge rule
    whose target is a Kinesis Firehose stream."""
    from moto.cloudformation import parsing
    from moto.core.common_models import CloudFormationModel

    class NotHonouredResource(CloudFormationModel):
        def __init__(self, resource_type: str, name: str, account_id: str, region_name: str) -> None:
            service, kind = [*resource_type.split("::"), "", ""][1:3]
            self.name = name
            self.arn = f"arn:aws:{service.lower()}:{region_name}:{account_id}:{kind.lower()}/{name}"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::LocalCloud::NotHonoured"

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> NotHonouredResource:
            return cls(kwargs.get("ResourceType", ""), resource_name, account_id, region_name)

        @classmethod
        def update_from_cloudformation_json(
            cls, original_resource: Any, new_resource_name: str, cloudformation_json: Any, account_id: str,
            region_name: str,
        ) -> Any:  # fmt: skip
            return original_resource

        @property
        def physical_resource_id(self) -> str:
            return self.name

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return True

        def get_cfn_attribute(self, attribute_name: str) -> str:
            return self.arn if attribute_name.endswith("Arn") else self.name

        def delete(self, account_id: str, region_name: str) -> None:
            pass

    original = parsing.resource_class_from_type

    def resource_class_from_type(resource_type: str) -> Any:
        found = original(resource_type)
        return NotHonouredResource if found is None and resource_type not in parsing.NULL_MODELS else found

    parsing.resource_class_from_type = resource_class_from_type


def _methods_without_an_integration_method() -> None:
    """An API Gateway method whose integration has no ``IntegrationHttpMethod`` or ``Uri`` (a MOCK one,
    as CDK's ``add_method("ANY")`` makes) or no ``AuthorizationType`` (NONE by default) made moto's
    CloudFormation fail the stack with KeyError; and moto kept only the integration's type, URI and
    method: its templates, parameters and integration responses are kept too, for the local API."""
    from moto.apigateway.models import Method

    create = Method.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: dict[str, Any], *args: Any, **kwargs: Any
    ) -> Any:
        properties = dict(cloudformation_json.get("Properties") or {})
        properties.setdefault("AuthorizationType", "NONE")
        integration = dict(properties.get("Integration") or {"Type": "MOCK"})
        integration.setdefault("IntegrationHttpMethod", properties.get("HttpMethod"))
        integration.setdefault("Uri", "")
        properties["Integration"] = integration
        method = create(
            cls, resource_name, {**cloudformation_json, "Properties": properties}, *args, **kwargs
        )
        created = method.method_integration
        created.request_templates = integration.get("RequestTemplates") or None
        created.request_parameters = integration.get("RequestParameters") or None
        created.passthrough_behaviour = integration.get("PassthroughBehavior") or "WHEN_NO_MATCH"
        created.credentials = integration.get("Credentials")
        for response in integration.get("IntegrationResponses") or []:
            created.create_integration_response(
                str(response["StatusCode"]), response.get("SelectionPattern"),
                response.get("ResponseTemplates") or {}, response.get("ResponseParameters") or {},
            )  # fmt: skip
        return method

    Method.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[assignment]
