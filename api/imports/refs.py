"""Finding the records a spreadsheet names: exactly (folded names, e-mails, ids) or, for the admin to confirm, the
closest candidates; and the fuzzy company-name index that spots a company already in the CRM under another
spelling ("ACME Corporation" for "Acme Corp")."""

import re
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from rapidfuzz import fuzz, process
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.auth.models import User
from api.clients.models import Company, Contact, ContactPoint
from api.core.models import live
from api.core.types import fold
from api.deals.models import Deal, LostReason, Pipeline, Product, Stage
from api.imports.fields import Ref

# Words that say what kind of company it is, not which: "Acme Corp" and "ACME Corporation" are one company.
_LEGAL = frozenset(
    [
        "sa",
        "s",
        "a",
        "sl",
        "s",
        "l",
        "slu",
        "sau",
        "sas",
        "sa",
        "de",
        "cv",
        "de",
        "cv",
        "srl",
        "ltda",
        "ltd",
        "limited",
        "inc",
        "incorporated",
        "corp",
        "corporation",
        "co",
        "company",
        "cia",
        "y",
        "cia",
        "llc",
        "plc",
        "gmbh",
        "ag",
        "bv",
        "nv",
        "spa",
        "sarl",
        "sociedad",
        "anonima",
        "limitada",
        "group",
        "grupo",
        "the",
        "el",
        "la",
        "los",
        "las",
    ]
)
_WORD = re.compile(r"[a-z0-9]+")
CANDIDATES = 3
# Below this score a name is not offered as a candidate at all.
CANDIDATE_CUTOFF = 60
# Past this many names, candidates come from names sharing a word (a full scan of each value would be quadratic).
FULL_SCAN = 5_000
STEM = 4


def core_name(name: str) -> str:
    """A company name without accents, punctuation or legal-form words: what fuzzy matching compares."""
    words = _WORD.findall(fold(name).replace("&", " and "))
    kept = [w for w in words if w not in _LEGAL]
    return " ".join(kept or words)


@dataclass
class Choices:
    """Named records of one kind (users, stages, companies...), searchable exactly and closely."""

    labels: dict[uuid.UUID, str] = field(default_factory=dict)
    exact: dict[str, set[uuid.UUID]] = field(default_factory=lambda: defaultdict(set))
    keys: list[str] = field(default_factory=list)
    ids: list[uuid.UUID] = field(default_factory=list)
    # Names by the first letters of each word: a typo later in a word ("Zarzuel") still finds "Zarzuela".
    by_word: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    # Stages: each one's pipeline, and the default pipeline (where a stage named without one is looked for).
    parent: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    home: uuid.UUID | None = None
    # The first record of each core name: the same company however it is spelt, found without scoring.
    cores: dict[str, uuid.UUID] = field(default_factory=dict)

    def add(self, record_id: uuid.UUID, label: str, *also: str) -> None:
        self.labels[record_id] = label
        for key in (label, *also):
            if key:
                self.exact[fold(key).strip()].add(record_id)
        fuzzy = core_name(label)
        self.cores.setdefault(fuzzy, record_id)
        self.keys.append(fuzzy)
        self.ids.append(record_id)
        for word in set(fuzzy.split()):
            if len(word) >= 3:
                self.by_word[word[:STEM]].append(len(self.keys) - 1)

    def find(self, value: str) -> set[uuid.UUID]:
        return self.exact.get(fold(value).strip(), set())

    def _pool(self, key: str) -> tuple[list[str], list[uuid.UUID]]:
        if len(self.keys) <= FULL_SCAN:
            return self.keys, self.ids
        # The names sharing the key's rarest words first ("zarzuela" before "farmacia"), up to FULL_SCAN of them.
        stems = {w[:STEM] for w in key.split() if len(w) >= 3}
        words = sorted((w for w in stems if w in self.by_word), key=lambda w: len(self.by_word[w]))
        indices: dict[int, None] = {}
        for word in words:
            indices.update(dict.fromkeys(self.by_word[word][: FULL_SCAN - len(indices)]))
            if len(indices) >= FULL_SCAN:
                break
        return [self.keys[i] for i in indices], [self.ids[i] for i in indices]

    def closest(self, value: str, limit: int = CANDIDATES, cutoff: int = CANDIDATE_CUTOFF) -> list[dict[str, Any]]:
        """The best matches, as [{"id", "label", "score"}], best first; one entry per record."""
        key = core_name(value)
        keys, ids = self._pool(key)
        found: dict[uuid.UUID, float] = {}
        for _, score, index in process.extract(key, keys, scorer=fuzz.WRatio, limit=limit * 3, score_cutoff=cutoff):
            found.setdefault(ids[index], score)
        best = sorted(found.items(), key=lambda item: -item[1])[:limit]
        return [{"id": str(i), "label": self.labels[i], "score": round(s)} for i, s in best]

    def same_company(self, name: str, threshold: int) -> uuid.UUID | None:
        """A company whose name is the same once legal forms and spelling are set aside (token order ignored)."""
        key = core_name(name)
        if not key:
            return None
        if key in self.cores:
            return self.cores[key]
        keys, ids = self._pool(key)
        best = process.extractOne(key, keys, scorer=fuzz.token_sort_ratio, score_cutoff=threshold)
        return ids[best[2]] if best else None


async def load(session: AsyncSession, org_id: uuid.UUID, ref: Ref) -> Choices:
    """The organisation's live records of a kind, by the names a spreadsheet may use for them."""
    choices = Choices()
    if ref is Ref.user:
        rows: Iterable[Any] = await session.execute(
            select(User.id, User.name, User.email).where(col(User.org_id) == org_id, col(User.deleted_at).is_(None))
        )
        for user_id, name, email in rows:
            choices.add(user_id, name, email)
    elif ref is Ref.stage:
        stages: Iterable[Any] = await session.execute(
            sa.select(col(Stage.id), col(Stage.name), col(Pipeline.name), col(Pipeline.id), col(Pipeline.is_default))
            .join(Pipeline, col(Pipeline.id) == col(Stage.pipeline_id))
            .where(col(Stage.org_id) == org_id, col(Stage.deleted_at).is_(None), col(Pipeline.deleted_at).is_(None))
        )
        for stage_id, name, pipeline, pipeline_id, is_default in stages:
            choices.add(stage_id, name)
            choices.labels[stage_id] = f"{name} ({pipeline})"
            choices.parent[stage_id] = pipeline_id
            if is_default:
                choices.home = pipeline_id
    elif ref is Ref.product:
        for product in (await session.scalars(live(Product, org_id))).all():
            choices.add(product.id, product.name, product.sku or "")
    elif ref is Ref.contact:
        emails: dict[uuid.UUID, list[str]] = defaultdict(list)
        points = await session.execute(
            select(ContactPoint.client_id, ContactPoint.value).where(
                col(ContactPoint.org_id) == org_id,
                col(ContactPoint.client_kind) == "contact",
                col(ContactPoint.kind) == "email",
            )
        )
        for client_id, value in points:
            emails[client_id].append(value)
        for contact_id, name in await session.execute(select(Contact.id, Contact.name).where(*_live(Contact, org_id))):
            choices.add(contact_id, name, *emails.get(contact_id, []))
    else:
        model: Any = {Ref.company: Company, Ref.pipeline: Pipeline, Ref.lost_reason: LostReason}.get(ref)
        label: Any = model.name if model is not None else Deal.title
        model = model or Deal
        for record_id, name in await session.execute(select(model.id, label).where(*_live(model, org_id))):
            choices.add(record_id, name)
    return choices


def _live(model: Any, org_id: uuid.UUID) -> tuple[Any, ...]:
    return col(model.org_id) == org_id, col(model.deleted_at).is_(None)
