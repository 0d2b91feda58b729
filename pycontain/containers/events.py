"""Events: containers (create, start, die, oom, kill, stop, pause, unpause, restart,
rename, destroy), images (pull, tag, untag, delete, load) and networks (create, connect,
disconnect, destroy).

The service records each event here; ``GET /events`` replays the recent ones
(``since``/``until``) and follows new ones.  The JSON shape is Docker's:

    {"status": "die", "id": "<id>", "from": "busybox", "Type": "container",
     "Action": "die", "Actor": {"ID": "<id>", "Attributes": {"name": ..., "image": ...,
     "exitCode": "0"}}, "scope": "local", "time": 1795824644, "timeNano": 1795824644913484199}
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

MAX_KEPT = 1000
MAX_QUEUED = 1000


class EventLog:
    def __init__(self) -> None:
        self._recent: deque[dict[str, Any]] = deque(maxlen=MAX_KEPT)
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def emit(self, action: str, container_id: str, name: str, image: str,
             **attributes: str) -> None:
        """A container's event."""
        self._publish({
            "status": action, "id": container_id, "from": image, "Type": "container",
            "Action": action,
            "Actor": {"ID": container_id,
                      "Attributes": {"name": name, "image": image, **attributes}},
        })

    def emit_object(self, kind: str, action: str, actor_id: str, **attributes: str) -> None:
        """An image's or a network's event (``kind`` "image" or "network")."""
        self._publish({"Type": kind, "Action": action,
                       "Actor": {"ID": actor_id, "Attributes": attributes}})

    def _publish(self, event: dict[str, Any]) -> None:
        now = time.time_ns()
        event.update({"scope": "local", "time": now // 1_000_000_000, "timeNano": now})
        self._recent.append(event)
        for queue in list(self._subscribers):
            if queue.qsize() < MAX_QUEUED:  # a reader that does not keep up loses events
                queue.put_nowait(event)

    def recent(self, since_ns: int = 0, until_ns: int | None = None) -> list[dict[str, Any]]:
        return [e for e in self._recent if e["timeNano"] >= since_ns
                and (until_ns is None or e["timeNano"] <= until_ns)]

    async def follow(self, since_ns: int | None, until_ns: int | None) -> AsyncIterator[
            dict[str, Any]]:
        """Past events from ``since_ns`` (if given), then new ones until ``until_ns``."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            if since_ns is not None:
                for event in self.recent(since_ns, until_ns):
                    yield event
            while True:
                timeout = None
                if until_ns is not None:
                    timeout = (until_ns - time.time_ns()) / 1e9
                    if timeout <= 0:
                        return
                try:
                    event = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    return
                yield event
        finally:
            self._subscribers.discard(queue)
