"""``localcloud`` (or ``python -m localcloud``): the local cloud's command line.

``up`` runs the local cloud in the foreground and deploys a CDK app to it; the other commands talk
to a running one through its endpoint (``--endpoint``, default ``http://127.0.0.1:4566``), as any
AWS tool would.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from localcloud.iam.enforcement import DEFAULT_IAM_MODE, MODES
from localcloud.server import LocalCloudError, local_client

DEFAULT_ENDPOINT = "http://127.0.0.1:4566"


def _control(endpoint: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 (the endpoint is http(s) by construction)
        f"{endpoint}/_localcloud/{path}", method=method, data=json.dumps(body).encode() if body else None
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise LocalCloudError(
            f"the local cloud answered {error.code}: {error.read().decode()[:200]}"
        ) from None
    except OSError:
        raise LocalCloudError(
            f"no local cloud answers at {endpoint}: start one with `localcloud up`"
        ) from None


def _read_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as error:
        raise LocalCloudError(f"cannot read {path}: {error.strerror}; give the path of a JSON file") from None
    except ValueError as error:
        raise LocalCloudError(f"{path} is not valid JSON ({error}); fix the file and try again") from None


def _pick(kind: str, wanted: str, candidates: dict[str, str]) -> str:
    """``candidates`` name -> value: an exact name, or a unique case-insensitive part of one."""
    if wanted in candidates:
        return candidates[wanted]
    found = [name for name in candidates if wanted.lower() in name.lower()]
    if len(found) == 1:
        return candidates[found[0]]
    listing = ", ".join(sorted(found or candidates)) or "(none deployed)"
    problem = "matches several" if found else "is not one of them"
    raise LocalCloudError(f"{kind} {wanted!r} {problem}: valid {kind}s are {listing}")


# -- commands -----------------------------------------------------------------------------------


def parse_context(pairs: list[str] | None) -> dict[str, str]:
    context = {}
    for pair in pairs or []:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise LocalCloudError(f"--context {pair!r} is not KEY=VALUE: e.g. --context stage=local")
        context[key] = value
    return context


def _print_extension_status(status: dict[str, dict[str, Any]]) -> None:
    for extension, fields in sorted(status.items()):
        for name, value in sorted(fields.items()):
            print(f"{extension} {name.replace('_', ' ')}: {value}")


def cmd_up(args: argparse.Namespace) -> int:
    from localcloud.cloud import LocalCloud, default_workdir

    app_dir = Path(args.app).resolve()
    if not args.no_deploy and not (app_dir / "cdk.json").is_file():
        raise LocalCloudError(
            f"{app_dir} has no cdk.json: run `localcloud up` in your CDK app's folder or give it with --app DIR"
        )
    context = parse_context(args.context)
    cloud = LocalCloud(
        port=args.port, api_port=args.api_port, dashboard_port=args.dashboard_port, echo_logs=not args.quiet,
        allowed_origins=args.allowed_origins or (), api_id=args.api_id, workdir=default_workdir(app_dir),
        iam=args.iam,
    ).start()  # fmt: skip
    try:
        print(
            f"local cloud: AWS endpoint {cloud.endpoint}, local API {cloud.api.url if cloud.api else 'off'}, "
            f"dashboard {cloud.dashboard.url if cloud.dashboard else 'off'}"
        )
        if cloud.extensions:
            print(f"extensions: {', '.join(extension.name for extension in cloud.extensions)}")
        if not args.no_deploy:
            stacks = " ".join(args.stacks or []) or "every stack"
            print(f"deploying {stacks} of {app_dir} with its CDK CLI ...", flush=True)
            report = cloud.deploy(args.stacks or (), app_dir=app_dir, context=context, staging=not args.watch)
            print(
                f"ready in {report.seconds:.1f} s (bootstrap {report.bootstrap_seconds:.1f} s, deploy {report.deploy_seconds:.1f} s): "
                f"{', '.join(report.stacks)}"
            )
            for name, value in sorted(report.outputs.items()):
                print(f"  {name:<32} {value}")
            for resource in cloud.unsupported_resources():
                print(f"  {not_honoured(resource)}")
            if args.watch:
                watched = cloud.watch_sources().seen
                print(
                    f"watching the source folders of {len(watched)} functions: an edit reaches the next invocation"
                )
        print(f"local API key (x-api-key): {cloud.api_key}")
        if cloud.dashboard:
            print(
                f"dashboard key (X-Api-Key of its actions, new every run): {cloud.dashboard_key}"
                f"  (saved for you only in {cloud.dashboard.key_file})"
            )
        if cloud.allowed_origins:
            print(f"web pages allowed to call the AWS endpoint: {', '.join(cloud.allowed_origins)}")
        _print_extension_status(cloud.extension_status())
        print("try: localcloud status; localcloud send <stack output> <event.json>  (Ctrl-C stops)")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        cloud.close()
    return 0


def _print_status(status: dict[str, Any]) -> None:
    print(
        f"endpoint {status['endpoint']}  api {status['api_url']}  dashboard {status['dashboard_url']}"
        f"  clock {status['clock']['now']}"
    )
    if status.get("dashboard_key"):
        print(f"dashboard key (X-Api-Key of its actions) {status['dashboard_key']}")
    print(f"{'queue':<64} {'visible':>7} {'in flight':>9} {'delayed':>7}")
    for name, q in sorted(status["queues"].items()):
        print(
            f"{name + (' (DLQ)' if q['dlq'] else ''):<64} {q['visible']:>7} {q['in_flight']:>9} {q['delayed']:>7}"
        )
    print(f"{'function':<64} {'invokes':>7} {'errors':>6} {'cold':>5} {'throttles':>9} {'p50 ms':>7}")
    for name, f in sorted(status["functions"].items()):
        print(
            f"{name:<64} {f['invocations']:>7} {f['errors']:>6} {f['cold_starts']:>5} {f['throttles']:>9} {f['p50_ms'] or '-':>7}"
        )
    for machine, counts in sorted(status["executions"].items()):
        print(f"state machine {machine}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"schedules pending: {status['schedules']['pending']}")
    if iam := status.get("iam"):
        unused = sum(len(grants) for grants in iam["unused"].values())
        print(
            f"iam ({iam['mode']}): {iam['allowed']} calls allowed, {iam['denied']} denied, "
            f"{sum(iam['not_evaluated'].values())} not evaluated; {unused} granted actions no call used"
        )
        for denial in iam["recent_denials"][-5:]:
            print(f"  {'denied' if denial['enforced'] else 'would deny'}: {denial['message']}")
    _print_extension_status(status.get("extensions") or {})
    for resource in status["unsupported_resources"]:
        print(not_honoured(resource))


def not_honoured(resource: dict[str, str]) -> str:
    """One line for a resource, or one of its properties, that the local cloud does not honour."""
    place = f"{resource['stack']}/{resource['resource']} ({resource['type']})"
    if resource.get("property"):
        place += f" {resource['property']}"
    return f"not honoured locally: {place}: {resource['why']}"


def cmd_status(args: argparse.Namespace) -> int:
    status = _control(args.endpoint, "GET", "status")
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        _print_status(status)
    return 0


def cmd_dashboard_key(args: argparse.Namespace) -> int:
    from localcloud.state import read_dashboard_key

    print(read_dashboard_key(args.port))
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    outputs = _control(args.endpoint, "GET", "status")["stack_outputs"]
    sendable = {k: v for k, v in outputs.items() if v.startswith(("arn:aws:sns", "arn:aws:states", "arn:aws:lambda", "arn:aws:events")) or "sqs" in v}  # fmt: skip
    target = _pick("target", args.target, sendable)
    payload = _read_json(args.file)
    body = json.dumps(payload)
    # Envelopes carry their type as a message attribute, which subscription filter policies match on.
    attributes = {"type": {"DataType": "String", "StringValue": payload["type"]}} if isinstance(payload, dict) and isinstance(payload.get("type"), str) else {}  # fmt: skip
    if target.startswith("arn:aws:sns"):
        result = local_client("sns", args.endpoint).publish(
            TopicArn=target, Message=body, MessageAttributes=attributes
        )
    elif target.startswith("arn:aws:states"):
        named = {"name": args.name} if args.name else {}
        result = local_client("stepfunctions", args.endpoint).start_execution(
            stateMachineArn=target, input=body, **named
        )
    elif target.startswith("arn:aws:lambda"):
        result = local_client("lambda", args.endpoint).invoke(
            FunctionName=target, InvocationType="Event", Payload=body.encode()
        )
        result = {"StatusCode": result["StatusCode"]}
    elif target.startswith("arn:aws:events"):
        result = local_client("events", args.endpoint).put_events(Entries=[{"EventBusName": target, "Source": "localcloud.send", "DetailType": str(payload.get("type", "event")), "Detail": body}])  # fmt: skip
    else:
        extra = {"MessageGroupId": "localcloud-send"} if target.endswith(".fifo") else {}
        result = local_client("sqs", args.endpoint).send_message(QueueUrl=target, MessageBody=body, MessageAttributes=attributes, **extra)  # fmt: skip
    result.pop("ResponseMetadata", None)
    print(json.dumps(result, default=str))
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    payload = json.dumps(_read_json(args.file)).encode()
    lambda_ = local_client("lambda", args.endpoint)
    names = {f["FunctionName"]: f["FunctionName"] for f in lambda_.list_functions()["Functions"]}
    function = _pick("function", args.function, names)
    response = lambda_.invoke(FunctionName=function, Payload=payload)
    print(response["Payload"].read().decode())
    if response.get("FunctionError"):
        print(
            f"error: {function} failed ({response['FunctionError']}); `localcloud up` prints its logs",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    from localcloud.sqs.redrive import redrive

    status = _control(args.endpoint, "GET", "status")
    queues = {name: q["url"] for name, q in status["queues"].items()}
    queues.update(
        {
            k: queues[v.rsplit("/", 1)[-1]]
            for k, v in status["stack_outputs"].items()
            if v.rsplit("/", 1)[-1] in queues
        }
    )
    dlq = _pick("queue", args.queue, queues)
    source = _pick("queue", args.to, queues) if args.to else None
    sqs = local_client("sqs", args.endpoint)
    report = redrive(
        sqs, dlq, source_url=source, dry_run=args.dry_run, limit=args.limit, message_ids=args.message_ids
    )
    print(report.summary())
    return 1 if report.failed else 0


def cmd_advance(args: argparse.Namespace) -> int:
    print(json.dumps(_control(args.endpoint, "POST", "clock/advance", {"seconds": args.seconds})))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="localcloud", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Any, help_text: str, endpoint: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        if endpoint:
            sub.add_argument(
                "--endpoint",
                default=DEFAULT_ENDPOINT,
                help=f"local cloud endpoint (default {DEFAULT_ENDPOINT})",
            )
        return sub

    up = command(
        "up", cmd_up, "run the local cloud in the foreground and deploy a CDK app to it", endpoint=False
    )
    up.add_argument(
        "--app", default=".", metavar="DIR", help="the CDK app's folder, with its cdk.json (default: here)"
    )
    up.add_argument(
        "--stack", action="append", dest="stacks", metavar="NAME",
        help="deploy this stack (repeatable); default: every stack of the app",
    )  # fmt: skip
    up.add_argument(
        "--context", action="append", metavar="KEY=VALUE", help="CDK context for the app (repeatable)"
    )
    up.add_argument(
        "--api-id",
        help="the REST API the local API serves at its root (default: the only one, or an extension's)",
    )
    up.add_argument("--port", type=int, default=4566, help="AWS endpoint port (default 4566)")
    up.add_argument("--api-port", type=int, default=3000, help="local API port (default 3000)")
    up.add_argument("--dashboard-port", type=int, default=3001, help="dashboard port (default 3001)")
    up.add_argument("--no-deploy", action="store_true", help="start empty; deploy yourself with the CDK CLI")
    up.add_argument("--quiet", action="store_true", help="do not print function logs")
    up.add_argument(
        "--iam", choices=MODES, default=DEFAULT_IAM_MODE,
        help="functions' calls checked against their roles' policies: enforce (denied as AWS denies), "
        f"report (allowed, each denial logged and counted) or off; default {DEFAULT_IAM_MODE}",
    )  # fmt: skip
    up.add_argument(
        "--watch", action="store_true",
        help="hot reload: deploy with asset staging off and run each function's edited source folder "
        "from its next invocation, without a redeploy",
    )  # fmt: skip
    up.add_argument(
        "--allow-origin", action="append", dest="allowed_origins", metavar="ORIGIN",
        help="let web pages on this origin call the AWS endpoint from a browser (repeatable), "
        "e.g. http://localhost:5173; by default every browser-origin request is refused",
    )  # fmt: skip
    status = command(
        "status",
        cmd_status,
        "queues, functions, executions, schedules and API calls of a running local cloud",
    )
    status.add_argument("--json", action="store_true", help="one JSON object")
    command(
        "dashboard-key", cmd_dashboard_key,
        "print the key the running dashboard's actions need (X-Api-Key); it is new every run",
        endpoint=False,
    ).add_argument("--port", type=int, default=3001, help="the dashboard's port (default 3001)")  # fmt: skip
    send = command(
        "send", cmd_send, "send a JSON file to a stack output (topic, queue, state machine, function, bus)"
    )
    send.add_argument("target", help="a stack output name, e.g. OrdersTopicArn")
    send.add_argument("file", help="a JSON file, e.g. events/order-created.json")
    send.add_argument(
        "--name",
        help="state machines: the execution name (a second execution of the same name is refused), "
        "e.g. the order id",
    )
    invoke = command("invoke", cmd_invoke, "invoke a deployed function synchronously with an event file")
    invoke.add_argument("function", help="a function name or a unique part of it, e.g. Inventory")
    invoke.add_argument("file", help="an event file, e.g. events/sqs-order-batch.json")
    redrive_ = command("redrive", cmd_redrive, "move a dead-letter queue's messages back to its source queue")
    redrive_.add_argument("queue", help="the DLQ: a stack output name, queue name, or a unique part of one")
    redrive_.add_argument("--to", help="the source queue, if it cannot be found from redrive policies")
    redrive_.add_argument("--dry-run", action="store_true", help="list what would move, move nothing")
    redrive_.add_argument("--limit", type=int, help="move at most this many messages")
    redrive_.add_argument(
        "--message-id", action="append", dest="message_ids", metavar="ID",
        help="move only this message (repeatable); the others stay in the DLQ",
    )  # fmt: skip
    advance = command(
        "advance-clock", cmd_advance, "move the local cloud's clock forward (schedules, retries)"
    )
    advance.add_argument("seconds", type=float)
    return root


def main(argv: list[str] | None = None) -> int:
    return run(parser(), argv)


def run(commands: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse and run one command; what the user can fix is one line on stderr and a non-zero exit."""
    args = commands.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.handler(args))
    except LocalCloudError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as error:
        print(f"error: the local cloud refused the request: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
