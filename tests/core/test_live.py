"""What a committed transaction announces on each channel (api/core/live.py), before any broker delivers it."""

import uuid

from api.core import live


def test_a_bare_announcement_makes_the_transaction_s_news_bare_and_sync_hints_stay_small() -> None:
    org, other = uuid.uuid4(), uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(live.IDS_PER_NOTIFY + 1)]
    # One bare announcement ("something changed") in a transaction: its organisation's news is bare.
    pending: live.Pending = [(org, ids[0]), (org, None), (other, ids[1])]
    assert live._by_org(live.SYNC, pending) == {org: [], other: [ids[1]]}
    # Sync pokes carry ids only to narrow down whom they concern: past one notification's worth they go bare;
    # the feed's ids are its news, and all of them are kept.
    many: live.Pending = [(org, i) for i in ids]
    assert live._by_org(live.SYNC, many) == {org: []}
    assert live._by_org(live.FEED, many) == {org: ids}
