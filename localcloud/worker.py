"""One Lambda execution environment: a long-lived process that imports a handler once and runs it per request.

Started as a script (not ``-m``), so the repository is not on ``sys.path``: the handler and
``shared/`` are imported from the function's deployed asset folder, as Lambda would. Requests
and responses are JSON lines on stdin and on a private copy of stdout; the handler's own
prints and logs go to stderr, which the runtime collects.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback


def main() -> int:
    from lambda_context import LocalLambdaContext  # beside this script

    code_dir, handler_path = sys.argv[1], sys.argv[2]
    sys.path[0] = code_dir  # replaces this script's folder: the handler sees only its asset
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # handler output -> stderr
    module_name, function_name = handler_path.rsplit(".", 1)
    started = time.perf_counter()
    handler = getattr(importlib.import_module(module_name), function_name)
    init_ms = (time.perf_counter() - started) * 1000
    protocol.write(json.dumps({"ready": True, "init_ms": init_ms}) + "\n")

    for line in sys.stdin:
        request = json.loads(line)
        context = LocalLambdaContext(
            function_name=os.environ["AWS_LAMBDA_FUNCTION_NAME"],
            timeout_seconds=request["timeout"],
            memory_limit_in_mb=int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")),
            aws_request_id=request["request_id"],
        )
        try:
            reply = {"ok": True, "result": handler(request["event"], context)}
        except Exception as error:  # reported to the caller like Lambda's errorType/errorMessage
            traceback.print_exc()
            reply = {"ok": False, "error_type": type(error).__name__, "error_message": str(error)}
        protocol.write(json.dumps(reply, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
