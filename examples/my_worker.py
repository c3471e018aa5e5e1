"""A worker for ``apiary bot --exec "python3 examples/my_worker.py"`` (docs/bots.md).

One process per task: the task's payload arrives on stdin as JSON; what this prints on
stdout is the result; exit status 0 means success, anything else fails the task with the
end of what this wrote to stderr as the reason. A payload it cannot use exits 65
(EX_DATAERR): the failure's kind is then ``bad-input``, and the hive does not try again.

Payload ``{"text": "...", "shout": false}`` -> result ``{"words": n, "reversed": "..."}``
(the words in reverse order, upper-cased when ``shout`` is true).
"""

from __future__ import annotations

import json
import sys

EX_DATAERR = 65  # sysexits.h: the input was bad (never retried)


def work(payload: object) -> dict[str, object]:
    if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
        raise ValueError('the payload needs "text", a string')
    words = payload["text"].split()
    reversed_text = " ".join(reversed(words))
    if payload.get("shout") is True:
        reversed_text = reversed_text.upper()
    return {"words": len(words), "reversed": reversed_text}


def main() -> int:
    try:
        result = work(json.load(sys.stdin))
    except ValueError as e:  # bad JSON or a payload this worker cannot use
        print(f"my_worker: {e}", file=sys.stderr)  # the task's error says this
        return EX_DATAERR  # 65: bad input, never retried
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
