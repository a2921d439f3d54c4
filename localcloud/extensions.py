"""What the local cloud knows of a particular stack arrives here, never in its own code.

The engine runs any CDK app generically. A stack's framework can teach it more through an extension:
an object with the hooks of ``Extension`` (any it leaves out do nothing), installed as a Python
entry point of the group ``localcloud.extensions``, e.g. in ``pyproject.toml``::

    [project.entry-points."localcloud.extensions"]
    myframework = "myframework.localcloud:MyExtension"

The entry point names a class (or a factory) called without arguments. Each hook gets the running
cloud as a ``Cloud``: its AWS clients, its clock and the deployed stacks' outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from localcloud.server import LocalCloudError

if TYPE_CHECKING:
    from localcloud.clock import Clock

ENTRY_POINT_GROUP = "localcloud.extensions"


class NotFound(LocalCloudError):
    """What a request names does not exist: the dashboard answers 404."""


class Refused(LocalCloudError):
    """The action cannot be done in this state: the dashboard answers 409."""


class Cloud(Protocol):
    """What an extension may use of the running local cloud."""

    @property
    def endpoint(self) -> str: ...

    @property
    def clock(self) -> Clock: ...

    def client(self, service: str) -> Any:
        """A boto3 client of the local endpoint."""
        ...

    def stack_outputs(self) -> dict[str, str]:
        """Every deployed stack's outputs, merged (the CDK bootstrap stack's left out)."""
        ...


@dataclass(frozen=True)
class Queue:
    """An SQS queue as ``is_dead_letter_queue`` sees it."""

    name: str
    arn: str
    tags: Mapping[str, str]


# (the item's id from the path, the request's JSON object) -> the answer, JSON-serialisable
PanelAction = Callable[[str, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class DashboardPanel:
    """A view of the dashboard that an extension provides; the dashboard shows it only then.

    ``name`` is its id: the page's ``#name`` anchor, the key of its data in ``/api/overview``, and
    its actions' path, ``POST /api/<name>/<item>/<action>`` (with the dashboard key, like every
    action). ``script`` is JavaScript served at ``/panels/<name>.js`` that draws it: it calls
    ``localcloud.panel(name, {mount(section), render(section, data, overview)})``, where ``section``
    is the view's element and ``data`` what ``read`` returned for this overview; ``localcloud``
    also offers the page's helpers (``el``, ``status``, ``time``, ``seconds``, ``progressBar``,
    ``act``, ``toast``). An action raises ``NotFound`` or ``Refused`` for what cannot be done.
    """

    name: str
    title: str
    script: str
    read: Callable[[], Any]
    actions: Mapping[str, PanelAction] = field(default_factory=dict)


class Extension(Protocol):
    """The hooks a stack's framework may implement; subclass it to leave some out."""

    name: str

    def cdk_context(self) -> Mapping[str, str]:
        """CDK context every deploy passes to the app (``--context``), e.g. that it runs locally."""
        return {}

    def status(self, cloud: Cloud) -> Mapping[str, Any]:
        """Extra fields for ``localcloud status`` (under ``extensions.<name>``), printed by ``up`` too."""
        return {}

    def root_api(self, cloud: Cloud) -> str | None:
        """The id of the REST API the local API serves at its root (``/{stage}/{path}``), if any."""
        return None

    def is_dead_letter_queue(self, queue: Queue) -> bool:
        """A dead-letter queue no redrive policy names (a topic's or a schedule's), e.g. by its tags."""
        return False

    def dashboard_panels(self, cloud: Cloud) -> Sequence[DashboardPanel]:
        """Views of this stack's own for the dashboard, beside the built-in ones."""
        return ()


def discover() -> list[Extension]:
    """The installed extensions, by entry-point name; one that cannot load stops the local cloud
    with its name (running without it would show a stack half-understood)."""
    found: list[Extension] = []
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda entry: entry.name):
        try:
            found.append(entry.load()())
        except Exception as error:
            raise LocalCloudError(
                f"the localcloud extension {entry.name!r} ({entry.value}) cannot be loaded: "
                f"{type(error).__name__}: {error}; uninstall it or fix it"
            ) from error
    return found
