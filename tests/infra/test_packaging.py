"""What Lambda runs: the staged function assets and the dependency layer (asyncstack/cdk/packaging.py).

The function assets are checked where they are deployed from (the folders of the synthesized
cloud assembly that the template's Code points at) and where ``stage_function`` builds them.
The layer is checked against the runtime and architecture the template declares.
"""

from __future__ import annotations

import ast
import compileall
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncstack.cdk import packaging
from asyncstack.cdk.packaging import (
    ROOT,
    LambdaTarget,
    PackagingError,
    default_target,
    dependency_layer_dir,
    stage_function,
)
from tests.infra.conftest import SynthesizedApp
from tests.infra.template_model import resources_of, target

pytestmark = pytest.mark.infra

FUNCTIONS = (
    "inventory", "email", "analytics", "signup", "jobs", "order_payments", "order_inventory",
    "order_notifications", "export_worker", "image_resize", "api", "webhook_delivery",
)  # fmt: skip
# Source only (packages live in the layer): every function ships all of shared/, still well under a second to upload.
MAX_FUNCTION_ASSET_BYTES = 512 * 1024
# Lambda's limit on a function's unzipped code plus all its layers.
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
# The Lambda Python runtime provides these; the layer must not ship its own copies.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
_LINUX_ARCH = {"arm64": "aarch64", "x86_64": "x86_64"}


def files_under(folder: Path) -> Iterator[Path]:
    return (path for path in folder.rglob("*") if path.is_file())


def size_of(folder: Path) -> int:
    return sum(path.stat().st_size for path in files_under(folder))


def top_level_imports(source: Path) -> set[str]:
    """Absolute imports a module makes at run time (``if TYPE_CHECKING:`` blocks are skipped)."""
    tree = ast.parse(source.read_text(), filename=str(source))
    type_checking_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_checking_only |= {id(child) for statement in node.body for child in ast.walk(statement)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_checking_only:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


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
def layer(declared_target: LambdaTarget) -> Path:
    return dependency_layer_dir(declared_target) / "python"


# --- function assets ---------------------------------------------------------------------------


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_deployed_asset_holds_the_handler_and_shared_code_only(
    deployed_assets: dict[str, Path], layer: Path, function: str
) -> None:
    # Given the folder the function's code is uploaded from
    asset = deployed_assets[function]
    # Then it has the handler at its root (handler.handler) and the shared package
    assert (asset / "handler.py").is_file()
    assert (asset / "shared" / "__init__.py").is_file()
    assert (asset / "asyncstack" / "runtime" / "consumer.py").is_file()
    assert not (asset / "asyncstack" / "cdk").exists()  # the constructs never run in Lambda
    # And no bytecode, and none of the third-party packages (those come from the layer)
    assert [p for p in asset.rglob("*") if p.name == "__pycache__" or p.suffix == ".pyc"] == []
    assert {p.name for p in asset.iterdir()} & {p.name for p in layer.iterdir()} == set()
    # And it is small
    assert size_of(asset) < MAX_FUNCTION_ASSET_BYTES


@pytest.mark.parametrize("function", FUNCTIONS)
def test_stage_function_copies_the_function_folder_and_shared(function: str) -> None:
    # Given the function's source folder and shared/
    # When the function is staged
    staged = stage_function(function)
    # Then the staged folder has the same handler and the shared package, and is small
    assert (staged / "handler.py").read_bytes() == (ROOT / "functions" / function / "handler.py").read_bytes()
    assert sorted(p.name for p in (staged / "shared").glob("*.py")) == sorted(
        p.name for p in (ROOT / "shared").glob("*.py")
    )
    assert size_of(staged) < MAX_FUNCTION_ASSET_BYTES


def test_stage_function_leaves_bytecode_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a copy of the source tree that has been byte-compiled (what a test run leaves behind)
    shutil.copytree(ROOT / "functions" / "inventory", tmp_path / "functions" / "inventory")
    shutil.copytree(ROOT / "shared", tmp_path / "shared")
    assert compileall.compile_dir(tmp_path, quiet=1)
    assert list(tmp_path.rglob("*.pyc")), "precondition: the copied sources are byte-compiled"
    monkeypatch.setattr(packaging, "ROOT", tmp_path)
    monkeypatch.setattr(packaging, "BUILD", tmp_path / ".build")
    # When the function is staged from it
    staged = stage_function("inventory")
    # Then the asset has the code but neither __pycache__ nor .pyc files
    assert (staged / "handler.py").is_file() and (staged / "asyncstack" / "runtime" / "consumer.py").is_file()
    assert [p for p in staged.rglob("*") if p.name == "__pycache__" or p.suffix == ".pyc"] == []


def test_stage_function_refuses_a_function_without_a_handler() -> None:
    # Given a function name with no functions/<name>/handler.py
    # Then staging it is a PackagingError that names the missing file
    with pytest.raises(PackagingError, match=r"functions/no-such-function/handler\.py"):
        stage_function("no-such-function")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_import_of_the_asset_resolves_on_lambda(
    deployed_assets: dict[str, Path], layer: Path, function: str
) -> None:
    # Given the modules the deployed asset imports at run time
    asset = deployed_assets[function]
    imported = set().union(*(top_level_imports(module) for module in asset.rglob("*.py")))
    # When each is looked up where Lambda looks: the standard library, the asset, the layer, the runtime
    available = (
        set(sys.stdlib_module_names)
        | {p.stem for p in asset.iterdir()}
        | {p.name.split(".")[0] for p in layer.iterdir() if not p.name.endswith((".dist-info", ".data"))}
        | set(RUNTIME_PROVIDED)
    )
    # Then none is missing (a package forgotten in functions/requirements.txt fails here, not in AWS)
    assert imported - available == set()


# --- dependency layer --------------------------------------------------------------------------


def test_the_template_declares_the_default_target(declared_target: LambdaTarget) -> None:
    # Given the runtime and architecture of the synthesized functions
    # Then they are the ones cdk.json names, which `make layer` builds
    assert declared_target == default_target()
    assert declared_target == LambdaTarget("3.14", "arm64")


def test_the_layer_is_referenced_by_every_function(synthesized: SynthesizedApp, layer: Path) -> None:
    # Given the layer resource every function uses
    template = synthesized.template
    layer_ids = {
        target(ref)
        for function in resources_of(template, "AWS::Lambda::Function").values()
        for ref in function["Layers"]
    }
    assert len(layer_ids) == 1
    (layer_id,) = layer_ids
    assert layer_id is not None
    # Then it deploys the layer folder built for the declared target, unchanged
    deployed = synthesized.asset_dir(template["Resources"][layer_id]["Properties"]["Content"])
    assert sorted(p.relative_to(deployed) for p in files_under(deployed)) == sorted(
        p.relative_to(layer.parent) for p in files_under(layer.parent)
    )


def test_the_layer_holds_the_function_requirements(layer: Path) -> None:
    # Given the layer built for the declared target
    # Then it has Powertools and pydantic under python/, where Lambda puts them on sys.path
    assert (layer / "aws_lambda_powertools" / "__init__.py").is_file()
    assert (layer / "pydantic" / "__init__.py").is_file()
    # And X-Ray's SDK, which Powertools' Tracer needs
    assert (layer / "aws_xray_sdk").is_dir()


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


def test_an_unbuilt_layer_is_a_clear_error() -> None:
    # Given a target no layer was built for
    never_built = LambdaTarget("3.99", "arm64")
    # When its layer is asked for
    # Then the error says which target and how to build it
    with pytest.raises(PackagingError, match=r"Python 3\.99 on arm64 is not built: run `make layer`"):
        dependency_layer_dir(never_built)


def test_an_unknown_architecture_is_rejected() -> None:
    # Given an architecture Lambda does not have
    # Then the target cannot even be created
    with pytest.raises(PackagingError, match="unknown Lambda architecture 'sparc'"):
        LambdaTarget("3.14", "sparc")
