"""A Dask worker preload (``--preload /path/to/stall_fetch.py``) that stalls
the first fetch of a result from this worker.

By default the host vanishes at the worst moment: the whole worker process
stops itself (SIGSTOP) before it answers. To everyone else that is a host whose
link was cut just after it finished a task: the connection to it stays open and
silent, heartbeats stop, and the scheduler removes it only after
``worker-ttl``. The test that starts the worker kills it (SIGKILL works on a
stopped process).

With ``$DTF_TEST_STALL_SECONDS`` the host is only slow: that first answer
comes that much later, while the worker stays in the cluster.

The time of the stall and the keys asked for are written to the file named by
``$DTF_TEST_STALL_MARK`` first, for the test to compare with.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any


def dask_setup(worker: Any) -> None:
    mark = os.environ["DTF_TEST_STALL_MARK"]
    slow = float(os.environ.get("DTF_TEST_STALL_SECONDS") or 0)
    original = worker.handlers["get_data"]

    # The server passes ``comm`` and ``serializers`` only to handlers whose
    # signature names them: without ``serializers`` the data would go pickled.
    async def get_data(comm: Any, keys: Any, who: Any = None, serializers: Any = None) -> Any:
        if not os.path.exists(mark):
            with open(mark, "w") as fh:
                fh.write(f"{time.time()!r} {' '.join(map(str, keys))}")
            if slow:
                await asyncio.sleep(slow)
            else:
                os.kill(os.getpid(), signal.SIGSTOP)
        return await original(comm, keys=keys, who=who, serializers=serializers)

    # The server looks its handlers up per message, so this applies from now on.
    worker.handlers["get_data"] = get_data
