"""The container lifecycle as an explicit state machine.

    created --start--> running --pause--> paused
       ^                  |  ^--unpause----'  |
       |                  |                   |
       |                exit <----------------'   (killed while paused)
       |                  v
       '---(failed)-- exited --start--> running
                       |  ^
     schedule-restart  v  | cancel-restart (stop)       restarting --start--> running
                   restarting
    running/paused --lose--> dead    (the shim vanished: exit status unknown)
    created, exited, dead --remove--> removing

``transition(container_name, current, action)`` returns the new status or raises
``InvalidStateTransition`` with the message Docker gives for the same mistake.
"""

from __future__ import annotations

from enum import StrEnum

from pycontain.errors import InvalidStateTransition


class Status(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


class Action(StrEnum):
    START = "start"
    EXIT = "exit"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    KILL = "kill"
    REMOVE = "remove"
    LOSE = "lose"                # the shim vanished without recording an exit status
    SCHEDULE_RESTART = "schedule-restart"
    CANCEL_RESTART = "cancel-restart"


_ALLOWED: dict[Action, dict[Status, Status]] = {
    Action.START: {Status.CREATED: Status.RUNNING, Status.EXITED: Status.RUNNING,
                   Status.RESTARTING: Status.RUNNING},
    Action.EXIT: {Status.RUNNING: Status.EXITED, Status.PAUSED: Status.EXITED,
                  Status.CREATED: Status.CREATED},
    Action.PAUSE: {Status.RUNNING: Status.PAUSED},
    Action.UNPAUSE: {Status.PAUSED: Status.RUNNING},
    Action.KILL: {Status.RUNNING: Status.RUNNING, Status.PAUSED: Status.PAUSED},
    Action.REMOVE: {Status.CREATED: Status.REMOVING, Status.EXITED: Status.REMOVING,
                    Status.DEAD: Status.REMOVING},
    Action.LOSE: {Status.RUNNING: Status.DEAD, Status.PAUSED: Status.DEAD},
    Action.SCHEDULE_RESTART: {Status.EXITED: Status.RESTARTING},
    Action.CANCEL_RESTART: {Status.RESTARTING: Status.EXITED},
}


def _refusal(name: str, current: Status, action: Action) -> str:
    if action is Action.REMOVE:
        if current in (Status.RUNNING, Status.PAUSED, Status.RESTARTING):
            verb = "unpause and then stop" if current is Status.PAUSED else "stop"
            return (f"cannot remove container \"{name}\": container is {current.value}: "
                    f"{verb} the container before removing or force remove")
        return f"removal of container {name} is already in progress"
    if action is Action.UNPAUSE:
        return f"Container {name} is not paused"
    if action is Action.START and current is Status.PAUSED:
        return f"cannot start a paused container {name}, try unpause instead"
    if action is Action.PAUSE and current is Status.PAUSED:
        return f"Container {name} is already paused"
    return f"Container {name} is not running"


def transition(name: str, current: Status, action: Action) -> Status:
    """The status after ``action``, or InvalidStateTransition when the move is illegal."""
    target = _ALLOWED[action].get(current)
    if target is None:
        raise InvalidStateTransition(_refusal(name, current, action))
    return target
