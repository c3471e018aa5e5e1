"""What can go wrong when a command meets the hive's rules.

One base class; each subclass's docstring is its default message. The API maps these to
HTTP statuses in exactly one place (``api/errors.py``).
"""

from __future__ import annotations


class HiveError(Exception):
    """The hive refused the command."""

    def __init__(self, message: str | None = None, **context: object) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.context = context
        super().__init__(self.message)


class InvalidInput(HiveError):
    """The command's input breaks a rule of the hive."""


class NotFound(HiveError):
    """No such thing in the hive."""


class InvalidTransition(HiveError):
    """That cannot happen in the current state."""


class NotYourTask(HiveError):
    """The task is not assigned to this bot."""


class StaleFencingToken(HiveError):
    """The fencing token is stale: the task was reassigned since."""


class BotNotLive(HiveError):
    """The bot is lost or deregistered: register again."""


class ConcurrentUpdate(HiveError):
    """The command kept colliding with concurrent changes; try again."""


class NotYourMessage(HiveError):
    """The message is not routed to this bot."""


class StaleDelivery(HiveError):
    """The delivery attempt is stale: the message was handed out again since."""


class Undeliverable(HiveError):
    """No bot can receive the message: nobody to send it to."""


class StaleVersion(HiveError):
    """The version given is not the current one: read it again, then change it."""


class NotApplicable(HiveError):
    """The change cannot be applied while the hive runs."""
