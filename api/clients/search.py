"""One search box over companies, contacts and deals: typo-tolerant on names, exact on e-mails, phones and
domains in any formatting, ranked, and only over what the caller may see.

Names: PostgreSQL ranks by trigram word similarity through a GIN index (pg_trgm); SQLite narrows candidates with
an FTS5 trigram index and ranks them with rapidfuzz (the same kind of score, computed in Python).
"""

import re
import uuid
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Literal, cast

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from rapidfuzz import fuzz
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.clients import normalise
from api.clients.models import Company, Contact, ContactPoint
from api.clients.service import phone_region
from api.core import examples as ex
from api.core.errors import ValidationFailed
from api.core.examples import examples
from api.core.types import fold, prefix_pattern
from api.deals.models import Deal
from api.sharing.visibility import Viewer, visible

Kind = Literal["company", "contact", "deal"]
# Below this similarity (out of 1) a name is not a match.
PG_THRESHOLD = 0.4
FUZZY_THRESHOLD = 0.6
SQLITE_CANDIDATES = 200


class SearchHit(BaseModel):
    kind: Kind
    id: uuid.UUID
    name: str = Field(description="The company's or contact's name, or the deal's title.")
    matched: Literal["name", "email", "phone", "domain"]
    score: float = Field(ge=0, le=1, description="1 is an exact match.")

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"kind": "company", "id": ex.COMPANY, "name": "Frutas Martínez S.L.", "matched": "name", "score": 0.92},
            {"kind": "contact", "id": ex.CONTACT, "name": "Lucía Martínez Soler", "matched": "phone", "score": 1.0},
        ),
    )


@dataclass(frozen=True)
class Target:
    kind: Kind
    model: Any
    name: Any
    folded: Any


TARGETS = (
    Target("company", Company, Company.name, Company.name_folded),
    Target("contact", Contact, Contact.name, Contact.name_folded),
    Target("deal", Deal, Deal.title, Deal.title_folded),
)


async def _handles(session: AsyncSession, viewer: Viewer, q: str) -> list[tuple[str, str]]:
    """The contact points the query could be, normalised: (kind, value)."""
    found = []
    # A query that is not an e-mail or a domain is still a fine name query: no error.
    if "@" in q:
        with suppress(ValidationFailed):
            found.append(("email", normalise.email(q, "#")))
    elif "." in q and " " not in q:
        with suppress(ValidationFailed):
            found.append(("domain", normalise.domain(q, "#")))
    phone = normalise.phone_or_none(q, await phone_region(session, viewer.org_id))
    if phone:
        found.append(("phone", phone))
    return found


async def _exact(session: AsyncSession, viewer: Viewer, q: str, kinds: set[Kind], limit: int) -> list[SearchHit]:
    handles = await _handles(session, viewer, q)
    hits: list[SearchHit] = []
    if not handles:
        return hits
    for target in TARGETS[:2]:
        if target.kind not in kinds:
            continue
        stmt = (
            visible(viewer, target.model)
            .join(ContactPoint, col(ContactPoint.client_id) == target.model.id)
            .where(sa.tuple_(col(ContactPoint.kind), col(ContactPoint.value)).in_(handles))
            .with_only_columns(target.model.id, target.name, col(ContactPoint.kind))
            .limit(limit)
        )
        for record_id, name, kind in await session.execute(stmt):
            hits.append(SearchHit(kind=target.kind, id=record_id, name=name, matched=kind, score=1.0))
    return hits


async def _names_postgres(
    session: AsyncSession, viewer: Viewer, term: str, target: Target, limit: int
) -> list[SearchHit]:
    similarity = sa.func.word_similarity(term, target.folded)
    starts = target.folded.like(prefix_pattern(term), escape="\\")
    stmt = (
        visible(viewer, target.model)
        .where(sa.or_(sa.literal(term).op("<%")(target.folded), starts))
        .with_only_columns(target.model.id, target.name, similarity.label("similarity"), target.folded)
        .order_by((target.folded == term).desc(), starts.desc(), similarity.desc(), target.folded)
        .limit(limit)
    )
    hits = []
    for record_id, name, raw_similarity, raw_folded in await session.execute(stmt):
        score = _score(term, cast(str, raw_folded), cast(float, raw_similarity))
        hits.append(SearchHit(kind=target.kind, id=record_id, name=name, matched="name", score=score))
    return hits


def _trigram_query(term: str) -> str | None:
    """An FTS5 query matching any trigram of the term's words (a typo keeps most of them)."""
    grams = {word[i : i + 3] for word in re.findall(r"\w+", term) for i in range(len(word) - 2)}
    if not grams:
        return None
    return " OR ".join('"' + gram.replace('"', '""') + '"' for gram in sorted(grams))


def _score(term: str, folded: str, similarity: float) -> float:
    """1 for the exact name, 0.95 for a name that starts with the query, else the similarity scaled below those."""
    if folded == term:
        return 1.0
    if folded.startswith(term):
        return 0.95
    return round(0.9 * similarity, 3)


def _similarity(term: str, folded: str) -> float:
    """Like pg_trgm's word_similarity: how well the query matches the name or a part of it (never a query that
    merely contains the name: "acme copr" is not a perfect match for "Acme")."""
    best = max(fuzz.ratio(term, folded), fuzz.token_sort_ratio(term, folded))
    if len(folded) > len(term):
        best = max(best, fuzz.partial_ratio(term, folded))
    return best / 100


async def _names_sqlite(
    session: AsyncSession, viewer: Viewer, term: str, target: Target, limit: int
) -> list[SearchHit]:
    table = target.model.__tablename__
    fts = sa.table(f"{table}_fts", sa.column("rowid"), sa.column("rank"))
    query = _trigram_query(term)
    stmt = visible(viewer, target.model).with_only_columns(target.model.id, target.name, target.folded)
    if query is None:
        # Shorter than a trigram: names starting with it.
        stmt = stmt.where(target.folded.like(prefix_pattern(term), escape="\\")).order_by(target.folded)
    else:
        stmt = (
            stmt.join(fts, fts.c.rowid == sa.literal_column(f"{table}.rowid"))
            .where(sa.literal_column(f"{table}_fts").op("MATCH")(query))
            .order_by(fts.c.rank)
        )
    rows = (await session.execute(stmt.limit(SQLITE_CANDIDATES))).all()
    hits = []
    for record_id, name, raw_folded in rows:
        folded = cast(str, raw_folded)
        similarity = _similarity(term, folded)
        if similarity >= FUZZY_THRESHOLD or folded.startswith(term):
            score = _score(term, folded, similarity)
            hits.append(SearchHit(kind=target.kind, id=record_id, name=name, matched="name", score=score))
    return sorted(hits, key=lambda h: -h.score)[:limit]


async def search(*, session: AsyncSession, viewer: Viewer, q: str, kinds: set[Kind], limit: int) -> list[SearchHit]:
    term = fold(q).strip()
    if not term:
        return []
    hits = await _exact(session, viewer, q.strip(), kinds, limit)
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        await session.execute(
            sa.select(sa.func.set_config("pg_trgm.word_similarity_threshold", str(PG_THRESHOLD), True))
        )
    for target in TARGETS:
        if target.kind in kinds:
            find = _names_postgres if postgres else _names_sqlite
            hits += await find(session, viewer, term, target, limit)
    best: dict[tuple[str, uuid.UUID], SearchHit] = {}
    for hit in hits:
        key = (hit.kind, hit.id)
        if key not in best or hit.score > best[key].score:
            best[key] = hit
    return sorted(best.values(), key=lambda h: (-h.score, h.name.casefold()))[:limit]
