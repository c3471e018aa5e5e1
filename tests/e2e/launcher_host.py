"""A stand-in for an engine: launches one pool bot with the autoscaler's
``LocalProcessLauncher`` from a thread that ends at once (as a loop's thread may), prints
the bot's pid, then waits for its stdin to close. A test kills it with -9.

``python -m tests.e2e.launcher_host HIVE_URL``
"""

from __future__ import annotations

import sys
import threading
from uuid import uuid4

from runtime.scaling.launcher import BotTemplate, LocalProcessLauncher


def main() -> None:
    launcher = LocalProcessLauncher(sys.argv[1], "apiary_not-a-real-token", stop_grace_s=5)
    launch_id = uuid4()
    template = BotTemplate("workers", ["code"], 1)
    launching = threading.Thread(target=launcher.launch, args=(launch_id, template))
    launching.start()
    launching.join()
    print(launcher.pid(launch_id), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
