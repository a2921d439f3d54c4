"""``python -m demo``: the example stack's demo on a local cloud of its own.

``run`` deploys the stack and runs one scenario per async pattern, then prints a summary (``make demo``);
``chaos`` sends order events through it and drives every stateful pattern while faults are injected,
then checks the invariants (``make chaos``). Both exit 0 only if everything behaved.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from localcloud.__main__ import run
from localcloud.server import LocalCloudError


def cmd_run(args: argparse.Namespace) -> int:
    from demo.runner import run_demo

    if args.events < 10:
        raise LocalCloudError("--events must be at least 10: try --events 100")
    ok = run_demo(
        events=args.events, patterns=args.patterns, port=args.port, timeout=args.timeout,
        dashboard_port=args.dashboard_port, keep=args.keep,
    )  # fmt: skip
    return 0 if ok else 1


def cmd_chaos(args: argparse.Namespace) -> int:
    from demo.chaos import ChaosConfig, run_chaos

    if args.events < 100:
        raise LocalCloudError(
            "--events must be at least 100 (faults are shares of the events): try --events 500"
        )
    config = ChaosConfig(
        events=args.events,
        kills=args.kills,
        timeouts=args.timeouts,
        seed=args.seed,
        patterns=not args.no_patterns,
    )
    return 0 if run_chaos(config, port=args.port, timeout=args.timeout).ok else 1


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        sub.add_argument("--port", type=int, default=None, help="AWS endpoint port (default: a free one)")
        return sub

    run = command("run", cmd_run, "deploy the stack and run one scenario per async pattern, then a summary")
    run.add_argument(
        "--pattern", action="append", dest="patterns", metavar="NAME",
        help="run only this pattern's scenario (repeatable), e.g. saga; default: every pattern",
    )  # fmt: skip
    run.add_argument("--events", type=int, default=200, help="pub-sub: messages to publish (default 200)")
    run.add_argument(
        "--dashboard-port", type=int, default=None,
        help="watch the demo in the dashboard on this port (default: a free one)",
    )  # fmt: skip
    run.add_argument(
        "--keep",
        action="store_true",
        help="leave the local cloud and its dashboard up afterwards, until Ctrl-C",
    )
    run.add_argument(
        "--timeout", type=float, default=240.0, help="pub-sub: seconds to wait for the pipeline to drain"
    )
    chaos = command(
        "chaos",
        cmd_chaos,
        "order events and every stateful pattern with faults injected, then the invariants",
    )
    chaos.add_argument("--events", type=int, default=10_000, help="messages to publish (default 10000)")
    chaos.add_argument("--kills", type=int, help="environments to kill mid-batch (default 1 per 1000 events)")
    chaos.add_argument("--timeouts", type=int, help="invocations to time out (default 1 per 5000 events)")
    chaos.add_argument("--seed", type=int, default=7, help="the random seed of events and faults")
    chaos.add_argument(
        "--no-patterns", action="store_true", help="only the order pipeline, not the other stateful patterns"
    )
    chaos.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds to wait for everything to finish"
    )
    return root


def main(argv: list[str] | None = None) -> int:
    return run(parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
