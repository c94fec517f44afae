"""A Dask worker preload (``--preload /path/to/stall_fetch.py``) that makes the
worker's host vanish at the worst moment: when somebody first fetches a result
from it, the whole worker process stops itself (SIGSTOP) before it answers.

To everyone else that is a host whose link was cut just after it finished a
task: the connection to it stays open and silent, heartbeats stop, and the
scheduler removes it only after ``worker-ttl``. The time of the stall is
written to the file named by ``$DTF_TEST_STALL_MARK`` first, for the test to
compare with. The test that starts the worker kills it (SIGKILL works on a
stopped process).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any


def dask_setup(worker: Any) -> None:
    mark = os.environ["DTF_TEST_STALL_MARK"]
    original = worker.handlers["get_data"]

    async def get_data(*args: Any, **kwargs: Any) -> Any:
        if not os.path.exists(mark):
            with open(mark, "w") as fh:
                fh.write(repr(time.time()))
            os.kill(os.getpid(), signal.SIGSTOP)
        return await original(*args, **kwargs)

    # The server looks its handlers up per message, so this applies from now on.
    worker.handlers["get_data"] = get_data
