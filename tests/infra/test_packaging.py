"""What Lambda runs: the staged function assets and the dependency layer (asyncstack/cdk/packaging.py).

The function assets are checked where they are deployed from (the folders of the synthesized
cloud assembly that the template's Code points at) and where ``stage_function`` builds them.
The layer is checked against the runtime and architecture the template declares.
"""

from __future__ import annotations

import compileall
import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_cdk import App, Stack

from asyncstack.cdk import packaging, python_function
from asyncstack.cdk.packaging import (
    FRAMEWORK,
    ROOT,
    LambdaTarget,
    PackagingError,
    build_dependency_layer,
    default_target,
    host_target,
    imported_names,
    layer_digest,
    layer_requirements,
    stage_function,
)
from asyncstack.cdk.python_function import LambdaPlatform
from tests.infra.conftest import SynthesizedApp
from tests.infra.template_model import resources_of, target

pytestmark = pytest.mark.infra

# The example's modules each function carries: what its handler imports, transitively, and no more.
APP_MODULES: dict[str, set[str]] = {
    "inventory": {"shared", "shared.config", "shared.events", "shared.inventory"},
    "email": {"shared", "shared.config", "shared.events", "shared.mailer"},
    "analytics": {"shared", "shared.config", "shared.analytics", "shared.events"},
    "signup": {"shared", "shared.config", "shared.events", "shared.mailer", "shared.signup"},
    "jobs": {"shared", "shared.config", "shared.events", "shared.mailer", "shared.signup"},
    "order_payments": {
        "shared", "shared.config", "shared.events", "shared.inventory", "shared.mailer", "shared.order_saga", "shared.payments",
    },
    "order_inventory": {
        "shared", "shared.config", "shared.events", "shared.inventory", "shared.mailer", "shared.order_saga", "shared.payments",
    },
    "order_notifications": {
        "shared", "shared.config", "shared.events", "shared.inventory", "shared.mailer", "shared.order_saga", "shared.payments",
    },
    "export_worker": {"shared", "shared.config", "shared.exports"},
    "image_resize": {"shared", "shared.config", "shared.png", "shared.thumbnails"},
    "api": {"shared", "shared.config", "shared.api", "shared.events", "shared.exports", "shared.orders"},
    "webhook_delivery": {"shared", "shared.config", "shared.exports", "shared.webhook_delivery"},
}  # fmt: skip
FUNCTIONS = tuple(APP_MODULES)
# Source only (packages live in the layer).
MAX_FUNCTION_ASSET_BYTES = 512 * 1024
# Lambda's limit on a function's unzipped code plus all its layers.
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
# The Lambda Python runtime provides these; the layer must not ship its own copies.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
# What the Lambda Python runtime has on sys.path besides the standard library: boto3 and its dependencies.
RUNTIME_PROVIDED_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
_LINUX_ARCH = {"arm64": "aarch64", "x86_64": "x86_64"}


def files_under(folder: Path) -> Iterator[Path]:
    return (path for path in folder.rglob("*") if path.is_file())


def size_of(folder: Path) -> int:
    return sum(path.stat().st_size for path in files_under(folder))


def modules_in(asset: Path, package: str) -> set[str]:
    """Dotted names of the modules of ``package`` (a top-level folder of the asset) the asset holds."""
    names = set()
    for path in (asset / package).rglob("*.py"):
        parts = path.relative_to(asset).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def top_level_imports(asset: Path, source: Path) -> set[str]:
    """Top-level names of what a module of the asset imports at run time (not under ``if TYPE_CHECKING:``)."""
    parts = source.relative_to(asset).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return {imported.split(".")[0] for imported in imported_names(packaging.Module(name, source, asset))}


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


@pytest.fixture(scope="module")
def deployed_assets(synthesized: SynthesizedApp) -> dict[str, Path]:
    """Function name -> the cloud-assembly folder its template Code is uploaded from."""
    assets = {}
    for function in resources_of(synthesized.template, "AWS::Lambda::Function").values():
        name = function["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        assets[name] = synthesized.asset_dir(function["Code"])
    assert sorted(assets) == sorted(FUNCTIONS)
    return assets


@pytest.fixture(scope="module")
def declared_target(synthesized: SynthesizedApp) -> LambdaTarget:
    """The runtime and architecture the synthesized functions declare, as a LambdaTarget."""
    functions = resources_of(synthesized.template, "AWS::Lambda::Function").values()
    declared = {(function["Runtime"], function["Architectures"][0]) for function in functions}
    assert len(declared) == 1, f"the functions do not share one runtime and architecture: {declared}"
    runtime, architecture = declared.pop()
    return LambdaTarget(runtime.removeprefix("python"), architecture)


@pytest.fixture(scope="module")
def deployed_layer(synthesized: SynthesizedApp) -> Path:
    """The cloud-assembly folder the one layer every function uses is uploaded from."""
    template = synthesized.template
    layer_ids = {
        target(ref)
        for function in resources_of(template, "AWS::Lambda::Function").values()
        for ref in function["Layers"]
    }
    assert len(layer_ids) == 1
    (layer_id,) = layer_ids
    assert layer_id is not None
    return synthesized.asset_dir(template["Resources"][layer_id]["Properties"]["Content"])


@pytest.fixture(scope="module")
def layer(deployed_layer: Path) -> Path:
    return deployed_layer / "python"


@pytest.fixture(scope="module")
def lambda_runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder standing for what the Lambda runtime provides: links to this venv's boto3 and its dependencies."""
    folder = tmp_path_factory.mktemp("lambda-runtime")
    for name in RUNTIME_PROVIDED_MODULES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, f"{name} is not installed"
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (folder / source.name).symlink_to(source)
    return folder


# --- function assets ---------------------------------------------------------------------------


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_deployed_asset_carries_the_handler_and_the_example_modules_it_imports(
    deployed_assets: dict[str, Path], layer: Path, function: str
) -> None:
    # Given the folder the function's code is uploaded from
    asset = deployed_assets[function]
    # Then it has the handler at its root (handler.handler)
    assert (asset / "handler.py").is_file()
    # And exactly the example modules its handler imports, transitively
    assert modules_in(asset, "shared") == APP_MODULES[function]
    # And of the framework only runtime modules (and the packages they are in), never the constructs
    framework = modules_in(asset, "asyncstack")
    assert {"asyncstack", "asyncstack.runtime", "asyncstack.runtime.observability"} <= framework
    beside_the_runtime = {m for m in framework if not m.startswith("asyncstack.runtime")}
    assert beside_the_runtime <= {"asyncstack", "asyncstack.contract"}
    assert not (asset / "asyncstack" / "cdk").exists()
    assert not (asset / "asyncstack" / "runtime" / "requirements.txt").exists()
    # And nothing else at its root, no bytecode, and none of the third-party packages (the layer has them)
    own = {p.name for p in (ROOT / "functions" / function).iterdir()}
    assert {p.name for p in asset.iterdir()} - own == {"asyncstack", "shared"}
    assert [p for p in asset.rglob("*") if p.name == "__pycache__" or p.suffix == ".pyc"] == []
    assert {p.name for p in asset.iterdir()} & {p.name for p in layer.iterdir()} == set()
    assert size_of(asset) < MAX_FUNCTION_ASSET_BYTES


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_staged_function_imports_with_only_its_asset_and_the_layer(
    deployed_assets: dict[str, Path], lambda_runtime: Path, function: str
) -> None:
    # Given the deployed asset and the layer built for this machine (the same requirements; the
    # declared target's compiled extensions cannot load here), and what the Lambda runtime provides
    asset = deployed_assets[function]
    host_layer = build_dependency_layer(host_target()) / "python"
    # When a fresh interpreter without site-packages (-S) or the repository (-I) imports the handler
    path = [str(asset), str(host_layer), str(lambda_runtime)]
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {path!r}; import handler"],
        cwd=asset,
        env={"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1", "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    # Then it imports cleanly: nothing it needs is missing from the asset or the layer
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_import_of_the_asset_resolves_on_lambda(
    deployed_assets: dict[str, Path], layer: Path, function: str
) -> None:
    # Given the modules the deployed asset imports at run time
    asset = deployed_assets[function]
    imported = set().union(*(top_level_imports(asset, module) for module in asset.rglob("*.py")))
    # When each is looked up where Lambda looks: the standard library, the asset, the layer, the runtime
    available = (
        set(sys.stdlib_module_names)
        | {p.stem for p in asset.iterdir()}
        | {p.name.split(".")[0] for p in layer.iterdir() if not p.name.endswith((".dist-info", ".data"))}
        | set(RUNTIME_PROVIDED)
    )
    # Then none is missing (a package forgotten in the requirements fails here, not in AWS)
    assert imported - available == set()


def test_function_folders_are_not_packages() -> None:
    # Given the example's function folders (Lambda loads each handler as the top-level module `handler`)
    folders = [p for p in (ROOT / "functions").iterdir() if (p / "handler.py").is_file()]
    assert sorted(p.name for p in folders) == sorted(FUNCTIONS)
    # Then none has an __init__.py: the folder is the root of its asset, not a package
    assert [p.name for p in folders if (p / "__init__.py").exists()] == []


# --- staging, on an app outside this repository ----------------------------------------------------


@pytest.fixture
def other_app(tmp_path: Path) -> Path:
    """An app of its own: its cdk.json, its own package names, one function with a helper module."""
    (tmp_path / "cdk.json").write_text("{}")
    write(
        tmp_path / "functions" / "hello" / "handler.py",
        """
        from typing import TYPE_CHECKING

        import json

        import helpers
        from acme.greeting import greet
        from asyncstack.runtime.errors import TransientError

        if TYPE_CHECKING:
            from acme import typing_only


        def handler(event, context):
            from acme.lazy import later  # imported when called: still shipped

            return greet(helpers.name(event)) + later()
        """,
    )
    write(
        tmp_path / "functions" / "hello" / "helpers.py",
        "from acme import util\n\ndef name(e): return util.NAME\n",
    )
    write(tmp_path / "functions" / "hello" / "template.txt", "Hello, {name}\n")
    write(tmp_path / "functions" / "hello" / "__init__.py", "")
    write(tmp_path / "acme" / "__init__.py", "")
    write(
        tmp_path / "acme" / "greeting.py",
        "from . import words\nfrom .text import upper\n\ndef greet(n): return upper(words.HELLO + n)\n",
    )
    write(tmp_path / "acme" / "words.py", "HELLO = 'hello '\n")
    write(tmp_path / "acme" / "text.py", "def upper(s): return s.upper()\n")
    write(tmp_path / "acme" / "util.py", "NAME = 'x'\n")
    write(tmp_path / "acme" / "lazy.py", "def later(): return ''\n")
    write(tmp_path / "acme" / "typing_only.py", "import does_not_exist\n")
    write(tmp_path / "acme" / "unused.py", "X = 1\n")
    write(tmp_path / "other" / "__init__.py", "")
    return tmp_path


def test_stage_function_ships_what_the_handler_imports_of_any_app(other_app: Path) -> None:
    # Given an app with its own package names, outside this repository
    # When its function is staged
    staged = stage_function("hello", root=other_app, build=other_app / ".build")
    # Then the asset holds the function's folder (not its __init__.py), the app modules the handler
    # imports directly, through its helper, through relative imports and lazily, and not the one
    # imported for type checking only, nor what nothing imports
    files = {str(p.relative_to(staged)) for p in files_under(staged)}
    app_files = {f for f in files if not f.startswith("asyncstack/")}
    assert app_files == {
        "handler.py", "helpers.py", "template.txt",
        "acme/__init__.py", "acme/greeting.py", "acme/words.py", "acme/text.py", "acme/util.py", "acme/lazy.py",
    }  # fmt: skip
    # And the framework's modules the handler imports, from where asyncstack is installed
    assert {f for f in files if f.startswith("asyncstack/")} == {
        "asyncstack/__init__.py", "asyncstack/runtime/__init__.py", "asyncstack/runtime/errors.py",
    }  # fmt: skip
    assert (staged / "asyncstack" / "runtime" / "errors.py").read_bytes() == (
        FRAMEWORK / "runtime" / "errors.py"
    ).read_bytes()


def test_stage_function_refuses_a_handler_importing_the_constructs(other_app: Path) -> None:
    # Given a helper module that imports asyncstack.cdk (aws_cdk is not in Lambda)
    write(
        other_app / "functions" / "hello" / "helpers.py", "from asyncstack.cdk.work_queue import WorkQueue\n"
    )
    # Then staging is a PackagingError that names the import
    with pytest.raises(PackagingError, match=r"helpers\.py imports asyncstack\.cdk\.work_queue"):
        stage_function("hello", root=other_app, build=other_app / ".build")


def test_stage_function_refuses_a_function_file_hiding_an_app_package(other_app: Path) -> None:
    # Given a function folder with a module named like the app's package its handler imports
    write(other_app / "functions" / "hello" / "acme.py", "")
    # Then staging is a PackagingError: one of the two would be lost in the asset
    with pytest.raises(
        PackagingError, match=r"functions/hello has its own 'acme', which hides acme\.greeting"
    ):
        stage_function("hello", root=other_app, build=other_app / ".build")


def test_stage_function_leaves_bytecode_out(tmp_path: Path) -> None:
    # Given a copy of an app that has been byte-compiled (what a test run leaves behind)
    (tmp_path / "cdk.json").write_text("{}")
    shutil.copytree(ROOT / "functions" / "inventory", tmp_path / "functions" / "inventory")
    shutil.copytree(ROOT / "shared", tmp_path / "shared")
    assert compileall.compile_dir(tmp_path, quiet=1)
    assert list(tmp_path.rglob("*.pyc")), "precondition: the copied sources are byte-compiled"
    # When the function is staged from it
    staged = stage_function("inventory", root=tmp_path)
    # Then the asset has the code but neither __pycache__ nor .pyc files
    assert (staged / "handler.py").is_file() and (staged / "asyncstack" / "runtime" / "consumer.py").is_file()
    assert staged.is_relative_to(tmp_path / ".build")
    assert [p for p in staged.rglob("*") if p.name == "__pycache__" or p.suffix == ".pyc"] == []


def test_stage_function_refuses_a_function_without_a_handler() -> None:
    # Given a function name with no functions/<name>/handler.py
    # Then staging it is a PackagingError that names the missing file
    with pytest.raises(PackagingError, match=r"functions/no-such-function/handler\.py"):
        stage_function("no-such-function")


# --- dependency layer --------------------------------------------------------------------------


def test_the_template_declares_the_default_target(declared_target: LambdaTarget) -> None:
    # Given the runtime and architecture of the synthesized functions
    # Then they are the ones cdk.json names
    assert declared_target == default_target()
    assert declared_target == LambdaTarget("3.14", "arm64")


def test_the_deployed_layer_is_the_cached_build_for_the_declared_target(
    deployed_layer: Path, declared_target: LambdaTarget
) -> None:
    # Given the layer folder of the cloud assembly (bundled during synthesis)
    # Then it is the layer cached for the declared target and the current requirements, unchanged
    cached = declared_target.layer_dir
    assert sorted(p.relative_to(deployed_layer) for p in files_under(deployed_layer)) == sorted(
        p.relative_to(cached) for p in files_under(cached)
    )


def test_the_layer_holds_the_framework_requirements(layer: Path) -> None:
    # Given the layer built for the declared target
    # Then it has Powertools and pydantic under python/, where Lambda puts them on sys.path
    assert (layer / "aws_lambda_powertools" / "__init__.py").is_file()
    assert (layer / "pydantic" / "__init__.py").is_file()
    # And X-Ray's SDK, which Powertools' Tracer needs
    assert (layer / "aws_xray_sdk").is_dir()


def test_the_layer_requirements_are_the_frameworks_then_the_apps(tmp_path: Path) -> None:
    # Given an app without functions/requirements.txt
    framework = layer_requirements(tmp_path)
    # Then the layer installs the framework's lock: every package pinned, with its hashes
    assert "pydantic==2.14.4 \\" in framework
    assert any(line.startswith("aws-lambda-powertools==") for line in framework)
    assert any(line.startswith("--hash=sha256:") for line in framework)
    digest = layer_digest(tmp_path)
    # When it adds comments only, then a package
    write(tmp_path / "functions" / "requirements.txt", "# nothing yet\n")
    assert layer_digest(tmp_path) == digest  # the same layer: comments do not rebuild it
    write(tmp_path / "functions" / "requirements.txt", "# the app's own\nrequests==2.32.5\n")
    # Then the layer installs the framework's requirements and the app's, and is another build
    assert layer_requirements(tmp_path) == [*framework, "requests==2.32.5"]
    assert layer_digest(tmp_path) != digest


def test_synthesis_builds_the_layer_locally_without_a_prior_build_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no layer built yet (an empty build folder) and pip replaced by a recorder
    built: list[LambdaTarget] = []

    def fake_build(target: LambdaTarget) -> Path:
        built.append(target)
        layer = tmp_path / "layer"
        write(layer / "python" / "fake_package" / "__init__.py", "")
        return layer

    monkeypatch.setattr(packaging, "BUILD", tmp_path / ".build")
    monkeypatch.setattr(python_function, "build_dependency_layer", fake_build)
    # When a stack with the platform is synthesized
    app = App(outdir=str(tmp_path / "cdk.out"))
    stack = Stack(app, "LayerOnly")
    LambdaPlatform.create(stack, target=LambdaTarget("3.14", "arm64"))
    assembly = app.synth()
    # Then the layer was built during synthesis, for the target, on this machine (no Docker)
    assert built == [LambdaTarget("3.14", "arm64")]
    (layer_asset,) = [p for p in Path(assembly.directory).glob("asset.*") if p.is_dir()]
    assert (layer_asset / "python" / "fake_package" / "__init__.py").is_file()


def test_the_layer_binaries_match_the_declared_runtime_and_architecture(
    layer: Path, declared_target: LambdaTarget
) -> None:
    # Given the runtime (python3.14) and architecture (arm64) the stack declares
    python, machine = declared_target.python.replace(".", ""), _LINUX_ARCH[declared_target.architecture]
    abi = f"cpython-{python}-{machine}-linux-gnu"
    # Then pydantic-core's compiled extension is built for exactly them
    assert (layer / "pydantic_core" / f"_pydantic_core.{abi}.so").is_file()
    assert abi == "cpython-314-aarch64-linux-gnu"
    # And no compiled extension of the layer is built for another interpreter or machine
    foreign = [p for p in layer.rglob("*.so") if "-linux-gnu" in p.name and abi not in p.name]
    assert foreign == []


def test_the_layer_leaves_out_what_the_runtime_provides(layer: Path) -> None:
    # Given the layer's top-level entries
    entries = {p.name.lower() for p in layer.iterdir()}
    # Then neither boto3, botocore nor s3transfer is shipped (the runtime has them; ~50 MB)
    shipped = {
        e for e in entries for provided in RUNTIME_PROVIDED if e == provided or e.startswith(f"{provided}-")
    }
    assert shipped == set()


def test_the_layer_and_the_largest_function_fit_lambdas_size_limit(
    layer: Path, deployed_assets: dict[str, Path]
) -> None:
    # Given the unzipped sizes of the layer and of the largest function asset
    total = size_of(layer.parent) + max(size_of(asset) for asset in deployed_assets.values())
    # Then together they stay under Lambda's 250 MB unzipped limit
    assert total < MAX_UNZIPPED_BYTES


def test_the_layer_ships_no_bytecode_of_the_build_machine(layer: Path, declared_target: LambdaTarget) -> None:
    # Given the layer built for Python 3.14
    runtime_tag = f"cpython-{declared_target.python.replace('.', '')}"
    # Then it holds no .pyc compiled by another interpreter (Lambda would ignore it: dead weight)
    foreign = [p for p in layer.rglob("*.pyc") if runtime_tag not in p.name]
    assert foreign == []


def test_an_unknown_architecture_is_rejected() -> None:
    # Given an architecture Lambda does not have
    # Then the target cannot even be created
    with pytest.raises(PackagingError, match="unknown Lambda architecture 'sparc'"):
        LambdaTarget("3.14", "sparc")


def test_the_layer_is_rebuilt_when_its_lock_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the layer's name for the framework's lock
    digest = layer_digest(tmp_path)
    lock = tmp_path / "requirements.lock"
    original = packaging.RUNTIME_LOCK.read_text()
    # When only one hash of the lock changes (a package re-released under the same version)
    first_hash = original.index("--hash=sha256:") + len("--hash=sha256:")
    lock.write_text(original[:first_hash] + "0" * 64 + original[first_hash + 64 :])
    monkeypatch.setattr(packaging, "RUNTIME_LOCK", lock)
    # Then the layer is another build
    assert layer_digest(tmp_path) != digest
