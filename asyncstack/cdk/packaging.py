"""Build what Lambda runs, without Docker.

* The dependency layer: the packages in ``functions/requirements.txt`` installed with
  pip's ``--platform``/``--python-version`` options, so the wheels match the runtime and
  architecture the stack declares, not the machine that builds them. Built by
  ``python -m asyncstack.cdk.packaging`` (``make layer``) so that ``cdk synth`` stays offline.
* Each function's asset: its own folder plus ``shared/``, staged at synth time. Small,
  because the heavy packages live in the layer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


def _project_root(start: Path) -> Path:
    """The CDK app's folder: the nearest one holding ``cdk.json`` (the CLI runs apps from there)."""
    for folder in (start, *start.parents):
        if (folder / "cdk.json").is_file():
            return folder
    return start


ROOT = _project_root(Path.cwd().resolve())
BUILD = ROOT / ".build"
FRAMEWORK = (
    Path(__file__).resolve().parent.parent
)  # the asyncstack package: its runtime goes into every function
REQUIREMENTS = ROOT / "functions" / "requirements.txt"
_LAYER_RECIPE = b"no-compile,without-runtime-packages"  # change it when the build changes
_PLATFORM_TAGS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
_RUNTIME_PROVIDED = ("boto3", "boto3-*", "botocore", "botocore-*", "s3transfer", "s3transfer-*", "bin")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "__init__.py", "requirements.txt")


class PackagingError(RuntimeError):
    """The dependency layer is missing or cannot be built."""


@dataclass(frozen=True)
class LambdaTarget:
    """The Lambda runtime (``3.13``) and architecture (``arm64`` or ``x86_64``) to build for."""

    python: str
    architecture: str

    def __post_init__(self) -> None:
        if self.architecture not in _PLATFORM_TAGS:
            raise PackagingError(
                f"unknown Lambda architecture {self.architecture!r}: use one of {sorted(_PLATFORM_TAGS)}"
            )

    @property
    def layer_dir(self) -> Path:
        digest = hashlib.sha256(REQUIREMENTS.read_bytes() + _LAYER_RECIPE).hexdigest()[:12]
        return BUILD / f"layer-py{self.python.replace('.', '')}-{self.architecture}-{digest}"


def default_target() -> LambdaTarget:
    """The target named in ``cdk.json``'s context."""
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    return LambdaTarget(context["asyncstack:lambdaPython"], context["asyncstack:lambdaArchitecture"])


def host_target() -> LambdaTarget:
    """This machine's Python and architecture: what the local cloud runs functions on."""
    architecture = {"aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "x86_64")
    return LambdaTarget(f"{sys.version_info.major}.{sys.version_info.minor}", architecture)


def build_dependency_layer(target: LambdaTarget) -> Path:
    """Install the function requirements for ``target`` into ``<layer>/python``; idempotent."""
    layer = target.layer_dir
    if (layer / "python").is_dir():
        return layer
    staging = layer.with_suffix(".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--requirement", str(REQUIREMENTS),
        "--target", str(staging / "python"),
        "--platform", _PLATFORM_TAGS[target.architecture],
        "--python-version", target.python,
        "--implementation", "cp",
        "--only-binary", ":all:",
        "--no-compile",  # .pyc files of the build machine's Python are never loaded by Lambda's
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackagingError(f"pip could not build the dependency layer for {target}:\n{result.stderr}")
    # The Lambda Python runtime ships boto3 and botocore (about 50 MB): keep them out.
    for provided in _RUNTIME_PROVIDED:
        for path in (staging / "python").glob(provided):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.rmtree(layer, ignore_errors=True)
    staging.rename(layer)
    return layer


def dependency_layer_dir(target: LambdaTarget) -> Path:
    """The built layer for ``target``; a clear error if it was not built yet."""
    layer = target.layer_dir
    if not (layer / "python").is_dir():
        raise PackagingError(
            f"the dependency layer for Python {target.python} on {target.architecture} is not built: "
            f"run `make layer` (or `python -m asyncstack.cdk.packaging --python {target.python} "
            f"--architecture {target.architecture}`)"
        )
    return layer


def stage_function(name: str) -> Path:
    """Copy ``functions/<name>``, the framework's runtime and the app's ``shared/`` into one asset folder."""
    source = ROOT / "functions" / name
    if not (source / "handler.py").is_file():
        raise PackagingError(f"functions/{name}/handler.py does not exist")
    staged = BUILD / "functions" / name
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(source, staged, ignore=_IGNORED)
    code = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(
        FRAMEWORK, staged / "asyncstack", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "cdk")
    )
    if (ROOT / "shared").is_dir():
        shutil.copytree(ROOT / "shared", staged / "shared", ignore=code)
    return staged


def main(argv: list[str] | None = None) -> int:
    default = default_target()
    parser = argparse.ArgumentParser(description="Build the Lambda dependency layer without Docker.")
    parser.add_argument("--python", default=default.python, help="Lambda Python version, e.g. 3.13")
    parser.add_argument("--architecture", default=default.architecture, choices=sorted(_PLATFORM_TAGS))
    args = parser.parse_args(argv)
    try:
        layer = build_dependency_layer(LambdaTarget(args.python, args.architecture))
    except PackagingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(layer.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
