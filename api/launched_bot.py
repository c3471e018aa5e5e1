"""``python -m api.launched_bot ARGS``: ``apiary bot ARGS`` for a bot that a process of the
hive starts (serve's demo bots, the autoscaler's local launcher).

It holds on to its parent (``runtime/bot/parent.py``) before anything else is imported:
the imports of ``apiary`` take seconds on a busy machine, and a bot must die with its
parent in that phase too. Only the standard library is loaded before that.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    from runtime.bot.parent import hold, parent_of

    parent = parent_of(os.environ)
    if parent is not None and not hold(parent):
        print("apiary bot: the process that started it is gone; exiting", file=sys.stderr)
        return 0
    from api.cli import main as apiary

    return apiary(["bot", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
