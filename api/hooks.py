"""What every change must cause in its own transaction, wherever it is made: the API, the CLI, an import."""

from api.core import changes
from api.insights import goals
from api.webhooks import events, outbox


def install() -> None:
    # Goals are reached in the transaction of the change that reaches them.
    changes.watch(goals.check)
    # Webhook events are written with the changes they report (the outbox), never after.
    changes.listen(outbox.collect, frozenset(events.ENTITIES))
