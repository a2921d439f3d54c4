"""A Python Lambda function packaged the stack's way, with its own least-privilege role.

Code is the function's folder plus the framework's and the app's modules its handler imports
(``asyncstack.cdk.packaging.stage_function``); third-party packages come from the dependency layer,
built during synthesis by CDK's local bundling (pip, no Docker). Logs go to a log group the function
owns (retention set) and the role may write to that log group only, instead of the account-wide
AWSLambdaBasicExecutionRole.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsii
from aws_cdk import (
    Acknowledgment,
    AssetHashType,
    BundlingFileAccess,
    BundlingOptions,
    BundlingOutput,
    DockerImage,
    DockerVolume,
    Duration,
    ILocalBundling,
    RemovalPolicy,
    Stack,
    Validations,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from asyncstack.cdk import packaging
from asyncstack.cdk.nag import skip_checkov
from asyncstack.cdk.packaging import (
    LambdaTarget,
    build_dependency_layer,
    layer_digest,
    layer_requirements,
    stage_function,
)

# Why a log group has no customer managed KMS key (checkov CKV_AWS_158): the first sentence holds for
# every log group; what the group holds is said by its construct.
LOGS_ENCRYPTED_BY_SERVICE = (
    "CloudWatch Logs encrypts every log group at rest with service-managed keys; a customer managed key "
    "would add a key policy for the logs service principal and protect nothing these logs hold."
)

_ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}


@jsii.implements(ILocalBundling)
class _LocalLayerBundling:
    """Bundles the dependency layer on this machine (pip's --platform options), so Docker is never needed."""

    def __init__(self, target: LambdaTarget) -> None:
        self.target = target

    def try_bundle(  # the options of BundlingOptions, as jsii passes them; none changes what pip builds
        self,
        output_dir: str,
        *,
        image: DockerImage,
        bundling_file_access: BundlingFileAccess | None = None,
        command: Sequence[str] | None = None,
        entrypoint: Sequence[str] | None = None,
        environment: Mapping[str, str] | None = None,
        local: ILocalBundling | None = None,
        network: str | None = None,
        output_type: BundlingOutput | None = None,
        platform: str | None = None,
        security_opt: str | None = None,
        user: str | None = None,
        volumes: Sequence[DockerVolume | dict[str, Any]] | None = None,
        volumes_from: Sequence[str] | None = None,
        working_directory: str | None = None,
    ) -> bool:
        # Either the layer is built (or was cached) and copied, or PackagingError stops the synth:
        # never False, which would make CDK fall back to the Docker image.
        shutil.copytree(build_dependency_layer(self.target), output_dir, dirs_exist_ok=True)
        return True


def dependency_layer_code(target: LambdaTarget) -> lambda_.Code:
    """The dependency layer for ``target`` as an asset bundled at synth time, named by the requirements' hash."""
    digest = layer_digest()
    source = packaging.BUILD / "layer-requirements" / f"{target.tag}-{digest}"
    source.mkdir(parents=True, exist_ok=True)
    (source / "requirements.txt").write_text("\n".join(layer_requirements()) + "\n")
    return lambda_.Code.from_asset(
        str(source),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=f"layer-{target.tag}-{digest}",
        bundling=BundlingOptions(
            # Required by CDK, never used: local bundling always succeeds or fails the synth.
            image=DockerImage.from_registry(f"public.ecr.aws/sam/build-python{target.python}"),
            local=_LocalLayerBundling(target),
        ),
    )


@dataclass(frozen=True)
class LambdaPlatform:
    """Runtime, architecture and the dependency layer every function of a stack shares."""

    target: LambdaTarget
    layer: lambda_.ILayerVersion

    @property
    def runtime(self) -> lambda_.Runtime:
        return lambda_.Runtime(f"python{self.target.python}", lambda_.RuntimeFamily.PYTHON)

    @property
    def architecture(self) -> lambda_.Architecture:
        return _ARCHITECTURES[self.target.architecture]

    @classmethod
    def create(cls, scope: Construct, *, target: LambdaTarget) -> LambdaPlatform:
        runtime = lambda_.Runtime(f"python{target.python}", lambda_.RuntimeFamily.PYTHON)
        layer = lambda_.LayerVersion(
            scope,
            "DependencyLayer",
            code=dependency_layer_code(target),
            compatible_runtimes=[runtime],
            compatible_architectures=[_ARCHITECTURES[target.architecture]],
            description=f"Third-party packages of the functions for Python {target.python}",
        )
        return cls(target=target, layer=layer)


class PythonFunction(Construct):
    """``functions/<source>/handler.py`` as a Lambda function with tracing, JSON logs and its own role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source: str,
        platform: LambdaPlatform,
        environment: Mapping[str, str] | None = None,
        timeout: Duration = Duration.seconds(30),
        memory_size: int = 512,
        reserved_concurrency: int | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        extra_layers: Sequence[lambda_.ILayerVersion] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        skip_checkov(
            self.log_group,
            "CKV_AWS_158",
            f"{LOGS_ENCRYPTED_BY_SERVICE} The function logs structured operational records (ids, types, "
            "outcomes, errors), never secrets.",
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Runs the {source} function",
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            code=lambda_.Code.from_asset(str(stage_function(source))),
            handler="handler.handler",
            runtime=platform.runtime,
            architecture=platform.architecture,
            layers=[platform.layer, *extra_layers],
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE,
            timeout=timeout,
            memory_size=memory_size,
            reserved_concurrent_executions=reserved_concurrency,
            environment={
                "POWERTOOLS_SERVICE_NAME": source,
                "POWERTOOLS_METRICS_NAMESPACE": Stack.of(self).stack_name,
                **(environment or {}),
            },
        )
        skip_checkov(
            self.function,
            "CKV_AWS_173",
            "The variables hold resource names, ARNs, URLs and settings, never secrets (a secret is read from "
            "Secrets Manager at run time, its ARN is the variable); Lambda encrypts them at rest with its "
            "AWS managed key.",
        )
        Validations.of(self.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray PutTraceSegments and PutTelemetryRecords support no resource-level permissions.",
            )
        )
