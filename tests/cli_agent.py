"""A command-line agent for tests/test_cli.py, speaking JSON (``nngc join --json-io`` or ``--serve``).

    python tests/cli_agent.py            one request (JSON) on stdin, one answer (JSON) on stdout
    python tests/cli_agent.py --serve    JSON lines: {"id", "kind", "value", ...} in, {"id", "answer"} out

The value "hang" sleeps past any test's handler timeout; "fail" exits 3 (one request) or
answers with an error (serve); a vote chooses the last option; a number task is doubled.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def answer(request: dict[str, Any]) -> Any:
    value = request["value"]
    if value == "hang":
        time.sleep(60)
    if value == "fail":
        raise RuntimeError(f"cannot do {value}")
    if request["kind"] == "vote":
        return {"choice": request["options"][-1], "confidence": 0.75, "reason": "python agent"}
    if isinstance(value, int):
        return value * 2
    return {"py": value, "kind": request["kind"]}


def main() -> int:
    if sys.argv[1:] == ["--serve"]:
        for line in sys.stdin:
            request = json.loads(line)
            try:
                reply = {"id": request["id"], "answer": answer(request)}
            except RuntimeError as exc:
                reply = {"id": request["id"], "error": str(exc)}
            print(json.dumps(reply), flush=True)
        return 0
    try:
        print(json.dumps(answer(json.load(sys.stdin))))
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
