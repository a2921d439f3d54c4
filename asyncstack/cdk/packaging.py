"""Build what Lambda runs, without Docker. Pure Python: nothing here imports aws_cdk.

* Each function's asset (``stage_function``): its folder ``functions/<name>/`` (``handler.py`` at the
  asset's root, loaded by Lambda as the top-level module ``handler``) plus the Python modules it
  imports, transitively, found by reading import statements (``ast``, nothing is imported or run)
  from ``handler.py`` on:

  - the framework's own modules (``asyncstack.runtime.*``, ``asyncstack.contract``), copied from
    where ``asyncstack`` is installed;
  - the app's own modules: any top-level package or module in the app's root folder (the folder of
    its ``cdk.json``), e.g. this repository's example's ``shared/``.

  Everything else is third-party (the dependency layer), the standard library or boto3 (the Lambda
  runtime). Imports under ``if TYPE_CHECKING:`` never run and are not followed; imports inside
  functions are. What static analysis cannot see (``importlib.import_module("x")``, ``__import__``)
  is not shipped: import such modules statically somewhere the handler reaches.
* The dependency layer (``build_dependency_layer``): the framework's locked runtime requirements
  (``asyncstack/runtime/requirements.lock``, with hashes, shipped with the package) plus the app's
  optional ``functions/requirements.txt``, installed with pip's ``--platform``/``--python-version`` options so
  the wheels match the runtime and architecture the stack declares, not the machine that builds them.
  Built during synthesis by CDK's local bundling (``asyncstack.cdk.python_function``) and cached in
  ``.build/`` under the hash of the lock and the app's requirements, so a synth with unchanged requirements copies it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import platform
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from constructs import IConstruct

from asyncstack import contract


def _project_root(start: Path) -> Path:
    """The CDK app's folder: the nearest one holding ``cdk.json`` (the CLI runs apps from there)."""
    for folder in (start, *start.parents):
        if (folder / "cdk.json").is_file():
            return folder
    return start


ROOT = _project_root(Path.cwd().resolve())
BUILD = ROOT / ".build"
# The installed asyncstack package: its runtime goes into the functions that import it.
FRAMEWORK = Path(__file__).resolve().parent.parent
FRAMEWORK_PACKAGE = FRAMEWORK.name  # "asyncstack"
# Never shipped: the constructs run at synth time only (and need aws_cdk, which Lambda does not have).
SYNTH_ONLY = f"{FRAMEWORK_PACKAGE}.cdk"
RUNTIME_LOCK = FRAMEWORK / "runtime" / "requirements.lock"  # compiled from requirements.txt (make lock)
APP_REQUIREMENTS = Path("functions") / "requirements.txt"  # relative to the app's root, optional
_LAYER_RECIPE = "no-compile,without-runtime-packages,require-hashes"  # change it when the build changes
_PLATFORM_TAGS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
# The Lambda Python runtime ships boto3 and botocore (about 50 MB): the layer leaves them out.
_RUNTIME_PROVIDED = ("boto3", "boto3-*", "botocore", "botocore-*", "s3transfer", "s3transfer-*", "bin")
_NOT_CODE = shutil.ignore_patterns("__pycache__", "*.pyc")


class PackagingError(RuntimeError):
    """A function or the dependency layer cannot be packaged; the message says why."""


# -- targets and the dependency layer ------------------------------------------------------------


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
    def tag(self) -> str:
        return f"py{self.python.replace('.', '')}-{self.architecture}"

    @property
    def layer_dir(self) -> Path:
        """Where the layer for this target and the current requirements is (or will be) cached."""
        return BUILD / f"layer-{self.tag}-{layer_digest()}"


# Context keys an app sets in cdk.json (or with --context) for the Lambda runtime it deploys to.
PYTHON_CONTEXT = "asyncstack:lambdaPython"
ARCHITECTURE_CONTEXT = "asyncstack:lambdaArchitecture"
DEFAULT_TARGET = ("3.13", "arm64")


def default_target() -> LambdaTarget:
    """The target named in ``cdk.json``'s context (Python 3.13 on arm64 when it names none)."""
    config = ROOT / "cdk.json"
    context = json.loads(config.read_text()).get("context", {}) if config.is_file() else {}
    return LambdaTarget(
        str(context.get(PYTHON_CONTEXT, DEFAULT_TARGET[0])),
        str(context.get(ARCHITECTURE_CONTEXT, DEFAULT_TARGET[1])),
    )


def deployed_locally(scope: IConstruct) -> bool:
    """True when a local cloud deploys the app (it passes ``asyncstack:localCloud=true``)."""
    return str(scope.node.try_get_context(contract.LOCAL_CLOUD_CONTEXT)).lower() == "true"


def target_for(scope: IConstruct) -> LambdaTarget:
    """What to build functions for: this machine's Python on a local cloud, else the app's context."""
    if deployed_locally(scope):
        return host_target()
    default = default_target()
    return LambdaTarget(
        str(scope.node.try_get_context(PYTHON_CONTEXT) or default.python),
        str(scope.node.try_get_context(ARCHITECTURE_CONTEXT) or default.architecture),
    )


def host_target() -> LambdaTarget:
    """This machine's Python and architecture: what the local cloud runs functions on."""
    architecture = {"aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "x86_64")
    return LambdaTarget(f"{sys.version_info.major}.{sys.version_info.minor}", architecture)


def _requirement_lines(path: Path) -> list[str]:
    """The requirement lines of a requirements file, without comments and blank lines."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def app_requirements(root: Path | None = None) -> list[str]:
    """The app's own requirements (``functions/requirements.txt``), if it has any."""
    app = (root or ROOT) / APP_REQUIREMENTS
    return _requirement_lines(app) if app.is_file() else []


def layer_requirements(root: Path | None = None) -> list[str]:
    """What the layer installs: the framework's lock (pins and hashes), then the app's requirements."""
    if not RUNTIME_LOCK.is_file():
        raise PackagingError(f"{RUNTIME_LOCK} is missing: reinstall asyncstack")
    return _requirement_lines(RUNTIME_LOCK) + app_requirements(root)


def layer_digest(root: Path | None = None) -> str:
    """Names the cached layer: what it installs (hashes included) and the way it is built."""
    text = "\n".join([_LAYER_RECIPE, *layer_requirements(root)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def build_dependency_layer(target: LambdaTarget) -> Path:
    """Install the requirements for ``target`` into ``<layer>/python``; cached, so idempotent and cheap."""
    layer = target.layer_dir
    if (layer / "python").is_dir():
        return layer
    staging = layer.with_suffix(".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    install = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--target", str(staging / "python"),
        "--platform", _PLATFORM_TAGS[target.architecture],
        "--python-version", target.python,
        "--implementation", "cp",
        "--only-binary", ":all:",
        "--no-compile",  # .pyc files of the build machine's Python are never loaded by Lambda's
    ]  # fmt: skip
    # The lock pins every package with its hashes: nothing is resolved, nothing unverified installed.
    _pip(target, [*install, "--require-hashes", "--no-deps", "--requirement", str(RUNTIME_LOCK)])
    if app_requirements():
        # Apart: a file without hashes cannot share pip's hash-checking mode with the lock.
        _pip(target, [*install, "--upgrade", "--requirement", str(ROOT / APP_REQUIREMENTS)])
    for provided in _RUNTIME_PROVIDED:
        for path in (staging / "python").glob(provided):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.rmtree(layer, ignore_errors=True)
    staging.rename(layer)
    return layer


def _pip(target: LambdaTarget, command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackagingError(f"pip could not build the dependency layer for {target}:\n{result.stderr}")


# -- what a function imports ----------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    """A module of the app or of the framework: its dotted name and where it is found."""

    name: str
    path: Path  # the source file: <base>/a/b.py or <base>/a/b/__init__.py
    base: Path  # the folder it is found under (a sys.path entry): path.relative_to(base) is its place in the asset


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that can run, leaving out ``if TYPE_CHECKING:`` bodies (their ``else`` runs)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def imported_names(module: Module) -> set[str]:
    """The dotted names ``module`` may import at run time: modules, and for ``from a import b`` also ``a.b``."""
    tree = ast.parse(module.path.read_bytes(), filename=str(module.path))
    is_package = module.path.name == "__init__.py"
    names: set[str] = set()
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, one level up per extra dot
                package = module.name.split(".") if is_package else module.name.split(".")[:-1]
                if node.level > len(package):
                    raise PackagingError(f"{module.path}: relative import beyond the top-level package")
                parts = package[: len(package) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base:
                names.add(base)
            names.update(f"{base}.{alias.name}".lstrip(".") for alias in node.names if alias.name != "*")
    return names


class _Finder:
    """Finds modules as Lambda would, in the asset's folders: the function's folder, then the app's
    root folder, and the framework package where it is installed. Anything not found there is not
    ours (standard library, the layer, the runtime)."""

    def __init__(self, function_dir: Path, app_root: Path) -> None:
        self.function_dir = function_dir
        self.app_root = app_root

    def _bases(self, top: str) -> Iterator[Path]:
        yield self.function_dir
        if top == FRAMEWORK_PACKAGE:
            yield FRAMEWORK.parent  # never the app's folder: the framework as installed
        else:
            yield self.app_root

    def find(self, name: str) -> Module | None:
        parts = name.split(".")
        for base in self._bases(parts[0]):
            path = _module_file(base, parts)
            if path is not None:
                return Module(name, path, base)
            if _is_package_dir(base / parts[0]):
                return None  # the package is here: a missing submodule is a name, not a module
        return None


def _is_package_dir(folder: Path) -> bool:
    """A regular package, or a namespace package holding Python code (not a folder of data)."""
    return folder.is_dir() and ((folder / "__init__.py").is_file() or any(folder.glob("*.py")))


def _module_file(base: Path, parts: Sequence[str]) -> Path | None:
    *packages, last = parts
    folder = base
    for package in packages:
        folder = folder / package
        if not _is_package_dir(folder):
            return None
    if (folder / last / "__init__.py").is_file():
        return folder / last / "__init__.py"
    if (folder / f"{last}.py").is_file():
        return folder / f"{last}.py"
    return None


def function_modules(function_dir: Path, app_root: Path) -> list[Module]:
    """The app's and the framework's modules ``function_dir/handler.py`` imports, transitively, by name.

    A module brings its packages (``a.b.c`` imports ``a`` and ``a.b`` first), so their ``__init__``
    modules are in the list and followed too. Modules of the function's own folder are followed but
    not listed: the folder is the asset.
    """
    finder = _Finder(function_dir, app_root)
    handler = Module("handler", function_dir / "handler.py", function_dir)
    found: dict[str, Module] = {}
    queue = deque([handler])
    seen = {handler.name}
    while queue:
        module = queue.popleft()
        for name in sorted(imported_names(module)):
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # the packages first, then the module
                prefix = ".".join(parts[:depth])
                if prefix in seen:
                    continue
                seen.add(prefix)
                located = finder.find(prefix)
                if located is None:
                    continue
                if prefix == SYNTH_ONLY or prefix.startswith(f"{SYNTH_ONLY}."):
                    raise PackagingError(
                        f"{module.path} imports {name}: {SYNTH_ONLY} runs at synth time only "
                        "(it needs aws_cdk, which Lambda does not have)"
                    )
                queue.append(located)
                if located.base != function_dir:
                    found[prefix] = located
    return sorted(found.values(), key=lambda m: m.name)


# -- staging ---------------------------------------------------------------------------------------


def _function_dir_entries(source: Path) -> Iterable[str]:
    """What the function's folder contributes to the asset's root, by name."""
    skipped = {
        "__pycache__",
        "__init__.py",
        "requirements.txt",
        "requirements.lock",
    }  # none is code Lambda loads
    return (p.name for p in source.iterdir() if p.name not in skipped and p.suffix != ".pyc")


def stage_function(name: str, *, root: Path | None = None, build: Path | None = None) -> Path:
    """Copy ``functions/<name>/`` and the modules its handler imports into one asset folder, and return it.

    ``root`` is the app's folder (default: the folder of ``cdk.json``); the asset is staged under
    ``build`` (default: ``<root>/.build``) in ``functions/<name>``.
    """
    root = root or ROOT
    source = root / "functions" / name
    if not (source / "handler.py").is_file():
        raise PackagingError(f"functions/{name}/handler.py does not exist")
    staged = (build or (BUILD if root == ROOT else root / ".build")) / "functions" / name
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    own = set(_function_dir_entries(source))
    own_names = {Path(entry).stem for entry in own}  # what `import <name>` finds in the asset's root
    for entry in own:
        path = source / entry
        if path.is_dir():
            shutil.copytree(path, staged / entry, ignore=_NOT_CODE)
        else:
            shutil.copy2(path, staged / entry)
    for module in function_modules(source, root):
        place = module.path.relative_to(module.base)
        top = Path(place.parts[0]).stem
        if top in own_names:
            raise PackagingError(
                f"functions/{name} has its own {top!r}, which hides {module.name} ({module.path}) "
                "in the asset: rename one of them"
            )
        (staged / place).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(module.path, staged / place)
    return staged
