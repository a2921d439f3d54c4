"""Extensions: how the local cloud learns what it cannot know of a stack (localcloud.extensions), and
asyncstack's own extension."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from asyncstack import contract
from asyncstack.localcloud_extension import AsyncStackExtension, delayed_jobs
from localcloud import extensions
from localcloud.cloud import LocalCloud
from localcloud.dashboard import DashboardData
from localcloud.extensions import Cloud, DashboardPanel, Extension, NotFound, Queue
from localcloud.server import LocalCloudError, free_port

pytestmark = pytest.mark.unit

REGION = "us-east-1"
NOTES_SCRIPT = 'window.localcloud.panel("notes", { render(section, data) {} });'


@dataclass
class NotesExtension(Extension):
    """A stack of its own: one context value, one status field, a tag for DLQs, a "notes" panel."""

    name: str = "notes"
    deleted: list[str] = field(default_factory=list)

    def cdk_context(self) -> Mapping[str, str]:
        return {"notes:local": "true", "notes:stage": "dev"}

    def status(self, cloud: Cloud) -> Mapping[str, Any]:
        return {"notes_endpoint": cloud.endpoint}

    def is_dead_letter_queue(self, queue: Queue) -> bool:
        return queue.tags.get("notes:role") == "dead-letters"

    def dashboard_panels(self, cloud: Cloud) -> Sequence[DashboardPanel]:
        def delete(note: str, request: Mapping[str, Any]) -> dict[str, Any]:
            if note == "missing":
                raise NotFound("no note missing")
            self.deleted.append(note)
            return {"deleted": note}

        return [
            DashboardPanel(
                name="notes", title="Notes", script=NOTES_SCRIPT, read=lambda: ["first note"],
                actions={"delete": delete},
            )
        ]  # fmt: skip


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCloud]:
    monkeypatch.setenv("LOCALCLOUD_STATE_DIR", str(tmp_path / "state"))
    with LocalCloud(
        port=free_port(), api_port=None, dashboard_port=free_port(), workdir=tmp_path / "cloud",
        extensions=[NotesExtension()],
    ) as running:  # fmt: skip
        yield running


def dashboard(cloud: LocalCloud, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any, str]:
    assert cloud.dashboard is not None
    request = urllib.request.Request(
        cloud.dashboard.url.rstrip("/") + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"X-Api-Key": cloud.dashboard_key, "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw, status, kind = response.read(), response.status, response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        raw, status, kind = error.read(), error.code, error.headers["Content-Type"]
    return status, json.loads(raw) if "json" in kind else raw.decode(), kind


def test_a_queue_is_a_dead_letter_queue_if_a_redrive_policy_names_it_or_an_extension_says_so(
    cloud: LocalCloud,
) -> None:
    # Given a work queue redriving to its DLQ, a DLQ no policy names but tagged as the extension
    # marks them, and a queue tagged with asyncstack's tag, which this extension does not know
    sqs = cloud.client("sqs")
    dlq = sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.create_queue(
        QueueName="work",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})},
    )
    sqs.create_queue(QueueName="undeliverable", tags={"notes:role": "dead-letters"})
    sqs.create_queue(QueueName="other-framework", tags={contract.DEAD_LETTER_QUEUE_TAG: "true"})
    # When the queues are read
    queues = cloud.queues()
    # Then the DLQs are those a redrive policy names or the extension marks, nothing else
    assert {name: queue["dlq"] for name, queue in queues.items()} == {
        "work-dlq": True, "work": False, "undeliverable": True, "other-framework": False,
    }  # fmt: skip
    assert queues["work-dlq"]["redrive_to"] == "work"


def test_deploys_pass_the_extensions_context_and_the_callers_wins(cloud: LocalCloud) -> None:
    assert cloud.cdk_context({"notes:stage": "test", "mine": "1"}) == {
        "notes:local": "true", "notes:stage": "test", "mine": "1",
    }  # fmt: skip


def test_status_carries_each_extensions_fields_under_its_name(cloud: LocalCloud) -> None:
    assert cloud.status()["extensions"] == {"notes": {"notes_endpoint": cloud.endpoint}}


def test_an_extension_panel_is_in_the_overview_with_its_script_and_actions(cloud: LocalCloud) -> None:
    # When the dashboard's overview, the panel's script and its action are asked for
    status, overview, _ = dashboard(cloud, "/api/overview")
    script_status, script, kind = dashboard(cloud, "/panels/notes.js")
    deleted = dashboard(cloud, "/api/notes/n-1/delete", {})
    missing = dashboard(cloud, "/api/notes/missing/delete", {})
    unknown = dashboard(cloud, "/api/notes/n-1/archive", {})
    # Then the overview lists the panel and carries its data under its name
    assert status == 200
    assert overview["panels"] == [{"name": "notes", "title": "Notes"}]
    assert overview["notes"] == ["first note"]
    # And its script is served as JavaScript, its action runs with its item, and errors are problems
    assert (script_status, script, kind) == (200, NOTES_SCRIPT, "text/javascript")
    assert deleted[:2] == (200, {"deleted": "n-1"})
    assert (missing[0], missing[1]["detail"]) == (404, "no note missing")
    assert unknown[0] == 404
    extension = cloud.extensions[0]
    assert isinstance(extension, NotesExtension) and extension.deleted == ["n-1"]


def test_without_extensions_the_dashboard_has_only_its_built_in_views(tmp_path: Path) -> None:
    # Given a cloud with no extension (not started: the overview reads moto's empty backends)
    cloud = LocalCloud(port=free_port(), api_port=None, workdir=tmp_path, extensions=[])
    # Then the overview has no panel and no stack-specific view
    overview = DashboardData(cloud).overview()
    assert overview["panels"] == []
    assert set(overview) == {
        "now",
        "clock_offset_seconds",
        "panels",
        "queues",
        "functions",
        "workflows",
        "iam",
    }


@pytest.mark.parametrize("name", ["queues", "panels", "Notes", "two words"])
def test_a_panel_may_not_hide_a_built_in_view_or_have_an_unsafe_name(tmp_path: Path, name: str) -> None:
    cloud = LocalCloud(port=free_port(), api_port=None, workdir=tmp_path, extensions=[])
    panel = DashboardPanel(name=name, title="x", script="", read=list)
    with pytest.raises(LocalCloudError, match="may not be called"):
        DashboardData(cloud, panels=[panel])


@dataclass
class FakeEntryPoint:
    name: str
    value: str
    loaded: Any

    def load(self) -> Any:
        if isinstance(self.loaded, Exception):
            raise self.loaded
        return self.loaded


def test_installed_extensions_are_found_by_their_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given two extensions installed under the group, in any order
    installed = [
        FakeEntryPoint("zeta", "z:Z", NotesExtension),
        FakeEntryPoint("alpha", "a:A", AsyncStackExtension),
    ]
    groups: list[str] = []
    monkeypatch.setattr(extensions, "entry_points", lambda group: groups.append(group) or installed)
    # When they are discovered
    found = extensions.discover()
    # Then each is made once, by name
    assert groups == ["localcloud.extensions"]
    assert [type(extension) for extension in found] == [AsyncStackExtension, NotesExtension]


def test_an_extension_that_cannot_load_is_named_in_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = FakeEntryPoint("broken", "broken.module:Extension", ImportError("no module named broken"))
    monkeypatch.setattr(extensions, "entry_points", lambda group: [broken])
    with pytest.raises(LocalCloudError, match=r"'broken' \(broken.module:Extension\) cannot be loaded"):
        extensions.discover()


def test_asyncstacks_extension_is_registered_in_the_package_metadata() -> None:
    # pyproject.toml's [project.entry-points."localcloud.extensions"], as installed
    assert any(isinstance(extension, AsyncStackExtension) for extension in extensions.discover())


@dataclass
class Outputs:
    """A cloud as an extension sees it, with given stack outputs."""

    outputs: dict[str, str]
    endpoint: str = "http://127.0.0.1:1"

    def stack_outputs(self) -> dict[str, str]:
        return self.outputs


def test_asyncstacks_extension_knows_its_context_tag_and_job_api() -> None:
    extension = AsyncStackExtension()
    assert extension.cdk_context() == {"asyncstack:localCloud": "true"}
    tagged = Queue("q", "arn:aws:sqs:us-east-1:123456789012:q", {contract.DEAD_LETTER_QUEUE_TAG: "true"})
    assert extension.is_dead_letter_queue(tagged)
    assert not extension.is_dead_letter_queue(Queue("q", tagged.arn, {}))
    assert extension.root_api(Outputs({"JobApiId": "abc123"})) == "abc123"  # type: ignore[arg-type]
    assert extension.root_api(Outputs({})) is None  # type: ignore[arg-type]


@dataclass
class MotoCloud:
    """A cloud as an extension sees it, on moto in-process: no outputs, so resources are found from
    the functions' environment."""

    endpoint: str = "http://127.0.0.1:1"

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)

    def stack_outputs(self) -> dict[str, str]:
        return {}


def test_the_schedules_view_finds_the_jobs_table_from_the_functions_environment(aws: None) -> None:
    # Given a jobs table with a pending, a done and another pending job, and a function the
    # DelayedJobs construct gave the table's name (no stack output names it)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName="jobs", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "job_key", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "job_key", "AttributeType": "S"}],
    )  # fmt: skip
    for key, status, due in [
        ("b", "pending", "2030-01-02"),
        ("a", "done", "2030-01-01"),
        ("c", "pending", "2030-01-01"),
    ]:
        dynamodb.put_item(
            TableName="jobs",
            Item={"job_key": {"S": key}, "status": {"S": status}, "due_at": {"S": due}, "via": {"S": "sqs"}},
        )
    function_with_environment({contract.JOBS_TABLE_NAME: "jobs"})
    # When the schedules view is read
    view = delayed_jobs(MotoCloud())  # type: ignore[arg-type]
    # Then the pending jobs are listed by due time, and every status counted
    assert [job["job_key"] for job in view["pending"]] == ["c", "b"]
    assert view["by_status"] == {"pending": 2, "done": 1}


def function_with_environment(variables: dict[str, str]) -> None:
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="worker", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return None\n")
    boto3.client("lambda", region_name=REGION).create_function(
        FunctionName="worker", Runtime="python3.12", Role=role, Handler="handler.handler",
        Code={"ZipFile": code.getvalue()}, Environment={"Variables": variables},
    )  # fmt: skip
