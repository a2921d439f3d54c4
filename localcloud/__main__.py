"""``python -m localcloud``: the local cloud's command line."""

from __future__ import annotations

import argparse
import sys

from localcloud.server import LocalCloudError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="run the order pipeline end to end on moto and reconcile the numbers"
    )
    demo.add_argument("--events", type=int, default=1000, help="messages to publish (default 1000)")
    demo.add_argument("--port", type=int, default=None, help="moto server port (default: a free one)")
    demo.add_argument(
        "--timeout", type=float, default=240.0, help="seconds to wait for the pipeline to drain"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from localcloud.demo import run_demo

            if args.events < 10:
                raise LocalCloudError("--events must be at least 10: try --events 100")
            return 0 if run_demo(events=args.events, port=args.port, timeout=args.timeout) else 1
    except LocalCloudError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
