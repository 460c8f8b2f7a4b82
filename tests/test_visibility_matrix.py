"""Who sees what (DESIGN §5), end to end: every caller, every read route, and records in each relation to the
caller (own, shared with them, their team's, another team's, another organisation's): nothing leaks, nothing
visible is hidden, other organisations' ids answer 404; and who may reassign a record to whom.

One world per test function (building it is the slow part); every (caller, route, record) case is checked in it
and the failures are reported together. What a caller should see comes from two small tables: VISIBLE
(role, relation, reps_see_team) and DENIED (role, route). Every response a caller gets, 200 or not, is also
scanned for the ids and the distinctive names of the records that caller may not see.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Organization, Role, Team, User
from api.auth.schemas import SCOPES
from tests.factories import (
    make_activity,
    make_api_key,
    make_company,
    make_contact,
    make_deal,
    make_org,
    make_team,
    make_user,
    share_with,
    sign_in,
)

V1 = "/api/v1"
Relation = Literal["own", "shared", "team", "other_team", "other_org"]
Kind = Literal["company", "contact", "deal", "activity"]
KINDS: tuple[Kind, ...] = ("company", "contact", "deal", "activity")

# (role, relation) → visible; SETTING means "when the organisation's `reps_see_team` is on".
SETTING = "reps_see_team"
VISIBLE: dict[str, dict[Relation, bool | str]] = {
    "rep": {"own": True, "shared": True, "team": SETTING, "other_team": False, "other_org": False},
    "manager": {"own": True, "shared": True, "team": True, "other_team": False, "other_org": False},
    "marketing": {"own": True, "shared": True, "team": True, "other_team": True, "other_org": False},
    "admin": {"own": True, "shared": True, "team": True, "other_team": True, "other_org": False},
    "api_key": {"own": True, "shared": True, "team": True, "other_team": True, "other_org": False},
}


def sees(role: str, relation: Relation, reps_see_team: bool) -> bool:
    rule = VISIBLE[role][relation]
    return reps_see_team if rule == SETTING else bool(rule)


# Read routes a role may not call at all (403 whatever the id): marketing reads clients and deals, and activities
# only on a client's card and timeline.
DENIED: dict[str, frozenset[str]] = {
    "marketing": frozenset({"list activity", "get activity", "feed", "deal timeline"}),
}

# One made-up word per record bundle, far apart from one another so a search for one finds only that bundle.
WORDS = (
    "Quillfeather",
    "Marzipaney",
    "Tundrafox",
    "Obsidora",
    "Pelicanth",
    "Zephyrine",
    "Galvanox",
    "Hollyhock",
    "Kestrelby",
    "Bramblewick",
    "Cinnabrix",
    "Dovetailor",
    "Umberjack",
    "Wolfsbane",
    "Yarrowmere",
    "Jasperlyn",
)


@dataclass
class Bundle:
    """A company with a contact, a deal on both and a done call on all three, owned by one user; the company is
    shared with `shared_with` (which shares its whole card)."""

    label: str
    word: str
    owner: User
    shared_with: tuple[User, ...]
    ids: dict[Kind, str] = field(default_factory=dict)

    @property
    def org_id(self) -> uuid.UUID:
        return self.owner.org_id


@dataclass
class Caller:
    name: str
    role: str
    org_id: uuid.UUID
    headers: dict[str, str]
    user: User | None = None
    # The teams whose members' records are "team" to this caller: a rep's team, a manager's subtree.
    team_ids: frozenset[uuid.UUID] = frozenset()

    def relation(self, bundle: Bundle) -> Relation:
        if bundle.org_id != self.org_id:
            return "other_org"
        if self.user is not None and bundle.owner.id == self.user.id:
            return "own"
        if self.user is not None and self.user.id in {u.id for u in bundle.shared_with}:
            return "shared"
        if bundle.owner.team_id in self.team_ids:
            return "team"
        return "other_team"


@dataclass
class World:
    org_a: Organization
    org_b: Organization
    teams: dict[str, Team]
    users: dict[str, User]
    admin_headers: dict[str, str]
    callers: list[Caller]
    bundles: list[Bundle]


async def _bundle(session: AsyncSession, label: str, word: str, owner: User, *shared_with: User) -> Bundle:
    bundle = Bundle(label, word, owner, shared_with)
    company = await make_company(session, owner, name=f"{word} Works")
    contact = await make_contact(session, owner, name=f"{word} Ortega", company_id=company.id)
    deal = await make_deal(session, owner, title=f"{word} renewal", company_id=company.id, contact_id=contact.id)
    call = await make_activity(
        session,
        owner,
        kind="call",
        subject=f"{word} call",
        company_id=company.id,
        contact_id=contact.id,
        deal_id=deal.id,
    )
    bundle.ids = {
        "company": str(company.id),
        "contact": str(contact.id),
        "deal": str(deal.id),
        "activity": str(call.id),
    }
    if shared_with:
        await share_with(session, owner, "company", company.id, *shared_with)
    return bundle


async def build_world(session: AsyncSession, client: httpx.AsyncClient) -> World:
    org_a = await make_org(session, "Alpha Visibility")
    sales = await make_team(session, org_a, name="Sales")
    north = await make_team(session, org_a, name="Sales North", parent=sales)
    north_sub = await make_team(session, org_a, name="North Sub", parent=north)
    south = await make_team(session, org_a, name="Sales South", parent=sales)
    teams = {"sales": sales, "north": north, "north_sub": north_sub, "south": south}

    async def user(name: str, role: Role, team: Team | None) -> User:
        return await make_user(session, org_a, role=role, team=team, name=name)

    users = {
        "manager": await user("Mia Manager", Role.manager, north),
        "north1": await user("Nils North", Role.rep, north),
        "north2": await user("Nora North", Role.rep, north),
        "sub1": await user("Sam Sub", Role.rep, north_sub),
        "sub2": await user("Sue Sub", Role.rep, north_sub),
        "south1": await user("Sol South", Role.rep, south),
        "south2": await user("Sid South", Role.rep, south),
        # In the root team, above the manager's: not in their subtree.
        "root": await user("Rob Root", Role.rep, sales),
        "marketing": await user("Max Marketing", Role.marketing, None),
        "admin": await user("Ada Admin", Role.admin, None),
    }
    org_b = await make_org(session, "Bravo Visibility")
    users["b_rep"] = await make_user(session, org_b, role=Role.rep, name="Bea Bravo")
    users["b_admin"] = await make_user(session, org_b, role=Role.admin, name="Ben Bravo")

    u = users
    words = iter(WORDS)
    bundles = [
        await _bundle(session, f"owned by {name}", next(words), u[name])
        for name in ("north1", "north2", "manager", "sub1", "sub2", "south1", "south2", "root", "admin")
    ]
    # Shared with one caller each, by someone in a team that caller does not otherwise see.
    bundles += [
        await _bundle(session, "south2's, shared with north1", next(words), u["south2"], u["north1"]),
        await _bundle(session, "south1's, shared with sub1", next(words), u["south1"], u["sub1"]),
        await _bundle(session, "north2's, shared with south1", next(words), u["north2"], u["south1"]),
        # The root team is above the manager's: a share is the only way in.
        await _bundle(session, "root's, shared with manager", next(words), u["root"], u["manager"]),
        await _bundle(session, "org B's", next(words), u["b_rep"]),
    ]

    _, key_secret = await make_api_key(session, org_a, *SCOPES)
    admin_headers = await sign_in(client, u["admin"])
    callers = [
        Caller("rep north1", "rep", org_a.id, await sign_in(client, u["north1"]), u["north1"], frozenset({north.id})),
        Caller("rep sub1", "rep", org_a.id, await sign_in(client, u["sub1"]), u["sub1"], frozenset({north_sub.id})),
        Caller("rep south1", "rep", org_a.id, await sign_in(client, u["south1"]), u["south1"], frozenset({south.id})),
        Caller(
            "manager",
            "manager",
            org_a.id,
            await sign_in(client, u["manager"]),
            u["manager"],
            frozenset({north.id, north_sub.id}),
        ),
        Caller("marketing", "marketing", org_a.id, await sign_in(client, u["marketing"]), u["marketing"]),
        Caller("admin", "admin", org_a.id, admin_headers, u["admin"]),
        Caller("api key (all scopes)", "api_key", org_a.id, {"Authorization": f"Bearer {key_secret}"}),
        Caller("org B admin", "admin", org_b.id, await sign_in(client, u["b_admin"]), u["b_admin"]),
    ]
    return World(org_a, org_b, teams, users, admin_headers, callers, bundles)


async def set_reps_see_team(client: httpx.AsyncClient, world: World, value: bool) -> None:
    response = await client.patch(
        f"{V1}/organization", json={"settings": {"reps_see_team": value}}, headers=world.admin_headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["settings"]["reps_see_team"] is value


def _ids(items: Iterable[dict[str, Any]]) -> set[str]:
    return {str(item["id"]) for item in items}


def _feed_refs(items: Iterable[dict[str, Any]]) -> dict[Kind, set[str]]:
    """The records feed items point at, by kind."""
    refs: dict[Kind, set[str]] = {k: set() for k in KINDS}
    for item in items:
        for kind in KINDS:
            if item.get(kind):
                refs[kind].add(str(item[kind]["id"]))
    return refs


class Checker:
    """Runs one caller's cases and collects what went wrong instead of stopping at the first failure."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        world: World,
        caller: Caller,
        reps_see_team: bool,
        feed_scopes: tuple[str, ...] = ("org", "me", "team"),
    ) -> None:
        self.client = client
        self.caller = caller
        self.feed_scopes = feed_scopes
        self.failures: list[str] = []
        self.cases = 0
        self.seen = [b for b in world.bundles if sees(caller.role, caller.relation(b), reps_see_team)]
        self.unseen = [b for b in world.bundles if b not in self.seen]
        self.all_ids = {k: {b.ids[k] for b in world.bundles} for k in KINDS}
        self.expected = {k: {b.ids[k] for b in self.seen} for k in KINDS}
        # What no response to this caller may contain: the ids and the names of what it may not see.
        self.secrets = [i for b in self.unseen for i in b.ids.values()] + [b.word.lower() for b in self.unseen]

    def check(self, ok: bool, what: str) -> None:
        self.cases += 1
        if not ok:
            self.failures.append(f"[{self.caller.name}] {what}")

    def denied(self, route: str) -> bool:
        return route in DENIED.get(self.caller.role, frozenset())

    async def get(self, url: str, **params: Any) -> httpx.Response:
        response = await self.client.get(url, params=params, headers=self.caller.headers)
        text = response.text.lower()
        leaked = [s for s in self.secrets if s in text]
        self.check(not leaked, f"GET {url} {params or ''} leaked {leaked}: {response.text[:300]}")
        return response

    async def pages(self, url: str, **params: Any) -> list[dict[str, Any]] | None:
        """All items of a list, following cursors; None when refused (after checking how)."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            response = await self.get(url, limit=200, **params, **({"cursor": cursor} if cursor else {}))
            self.check(response.status_code == 200, f"GET {url}: {response.status_code} {response.text[:200]}")
            if response.status_code != 200:
                return None
            body = response.json()
            items += body["items"]
            cursor = body.get("next_cursor")
            if not cursor:
                return items

    def refs_visible(self, refs: dict[Kind, set[str]], where: str) -> None:
        for kind, ids in refs.items():
            hidden = (ids & self.all_ids[kind]) - self.expected[kind]
            self.check(not hidden, f"{where} shows {kind}(s) the caller may not see: {hidden}")

    async def status_case(self, route: str, url: str, bundle: Bundle, **params: Any) -> dict[str, Any] | None:
        """The status a single-record route must answer; the body when it is a 200."""
        response = await self.get(url, **params)
        relation = self.caller.relation(bundle)
        if self.denied(route):
            want = 403
        elif bundle in self.seen:
            want = 200
        else:
            want = 404
        self.check(
            response.status_code == want,
            f"{route} of {bundle.label} ({relation}): {response.status_code}, expected {want}",
        )
        return response.json() if response.status_code == want == 200 else None

    # The routes

    async def lists(self) -> None:
        for kind, path in (
            ("company", "companies"),
            ("contact", "contacts"),
            ("deal", "deals"),
            ("activity", "activities"),
        ):
            route = f"list {kind}"
            if self.denied(route):
                response = await self.get(f"{V1}/{path}")
                self.check(response.status_code == 403, f"{route}: {response.status_code}, expected 403")
                continue
            items = await self.pages(f"{V1}/{path}")
            if items is None:
                continue
            got = _ids(items)
            self.check(
                not (got - self.expected[kind]),
                f"{route} leaks {sorted(self._labels(got - self.expected[kind], kind))}",
            )
            self.check(
                not (self.expected[kind] - got),
                f"{route} hides {sorted(self._labels(self.expected[kind] - got, kind))}",
            )

    def _labels(self, ids: set[str], kind: Kind) -> list[str]:
        by_id = {b.ids[kind]: b.label for b in self.seen + self.unseen}
        return [by_id.get(i, i) for i in ids]

    async def gets(self, bundle: Bundle) -> None:
        for kind, path in (
            ("company", "companies"),
            ("contact", "contacts"),
            ("deal", "deals"),
            ("activity", "activities"),
        ):
            body = await self.status_case(f"get {kind}", f"{V1}/{path}/{bundle.ids[kind]}", bundle)
            if body is not None:
                self.check(body["id"] == bundle.ids[kind], f"get {kind} of {bundle.label} answered another record")

    async def cards(self, bundle: Bundle) -> None:
        for kind in ("company", "contact"):
            card = await self.status_case(f"card {kind}", f"{V1}/clients/{bundle.ids[kind]}/card", bundle)
            if card is None:
                continue
            where = f"{kind} card of {bundle.label}"
            deals = card["open_deals"] + card["won_deals"] + card["lost_deals"]
            touches = [t for t in (card["last_touch"], card["next_touch"]) if t] + card["open_tasks"]
            refs: dict[Kind, set[str]] = {
                "company": {card["company"]["id"]} if card["company"] else set(),
                "contact": _ids(card["contacts"]) | ({card["contact"]["id"]} if card["contact"] else set()),
                "deal": _ids(deals),
                "activity": _ids(touches),
            }
            timeline = _feed_refs(card["timeline"]["items"])
            self.refs_visible(refs, where)
            self.refs_visible(timeline, f"{where} (timeline)")
            # And what it should show: the bundle's records (all visible with the client).
            if kind == "company":
                self.check(bundle.ids["contact"] in refs["contact"], f"{where} misses its contact")
            else:
                self.check(refs["company"] == {bundle.ids["company"]}, f"{where} misses its company")
            self.check(bundle.ids["deal"] in _ids(card["open_deals"]), f"{where} misses its open deal")
            self.check((card["last_touch"] or {}).get("id") == bundle.ids["activity"], f"{where} misses its last call")
            self.check(bundle.ids["activity"] in timeline["activity"], f"{where} timeline misses the call")

    async def timelines(self, bundle: Bundle) -> None:
        routes = [
            ("client timeline", f"{V1}/clients/{bundle.ids['company']}/timeline"),
            ("client timeline", f"{V1}/clients/{bundle.ids['contact']}/timeline"),
            ("deal timeline", f"{V1}/deals/{bundle.ids['deal']}/timeline"),
        ]
        for route, url in routes:
            body = await self.status_case(route, url, bundle, limit=200)
            if body is None:
                continue
            refs = _feed_refs(body["items"])
            self.refs_visible(refs, f"{route} {url}")
            self.check(bundle.ids["activity"] in refs["activity"], f"{route} {url} of {bundle.label} misses the call")

    async def search(self, bundle: Bundle) -> None:
        response = await self.get(f"{V1}/search", q=bundle.word, limit=50)
        self.check(response.status_code == 200, f"search {bundle.word}: {response.status_code}")
        if response.status_code != 200:
            return
        hits: dict[Kind, set[str]] = {k: set() for k in KINDS}
        for hit in response.json()["items"]:
            hits[hit["kind"]].add(str(hit["id"]))
        self.refs_visible(hits, f"search {bundle.word!r}")
        want = bundle in self.seen
        for kind in ("company", "contact", "deal"):
            found = bundle.ids[kind] in hits[kind]
            self.check(found == want, f"search {bundle.word!r} ({bundle.label}): {kind} found={found}, expected {want}")

    async def feed(self) -> None:
        for scope in self.feed_scopes:
            route = f"feed?scope={scope}"
            if self.denied("feed"):
                response = await self.get(f"{V1}/feed", scope=scope)
                self.check(response.status_code == 403, f"{route}: {response.status_code}, expected 403")
                continue
            items = await self.pages(f"{V1}/feed", scope=scope)
            if items is None:
                continue
            refs = _feed_refs(items)
            self.refs_visible(refs, route)
            if scope == "org":
                # Every visible deal was created and every visible call logged: each is in the feed.
                for kind in ("deal", "activity"):
                    missing = self.expected[kind] - refs[kind]
                    self.check(not missing, f"{route} hides {kind}(s) of {self._labels(missing, kind)}")
            elif self.caller.user is not None:
                # What the caller did themselves is in their own and their team's feed.
                mine = {b.ids["activity"] for b in self.seen if b.owner.id == self.caller.user.id}
                self.check(mine <= refs["activity"], f"{route} misses the caller's own calls")

    async def run(self, bundles: list[Bundle]) -> None:
        await self.lists()
        await self.feed()
        for bundle in bundles:
            await self.gets(bundle)
            await self.cards(bundle)
            await self.timelines(bundle)
            await self.search(bundle)


def _relations_covered(world: World) -> list[str]:
    """Each caller has a record in each relation its role can have: the world really exercises the table."""
    problems = []
    for caller in world.callers:
        have = {caller.relation(b) for b in world.bundles}
        need: set[Relation] = {"other_team", "other_org"}
        if caller.role in ("rep", "manager"):
            need |= {"own", "shared", "team"}
        if not need <= have:
            problems.append(f"{caller.name} has no record that is {sorted(need - have)}")
    return problems


async def run_matrix(
    client: httpx.AsyncClient, world: World, groups: list[tuple[list[Caller], dict[str, Any]]], reps_see_team: bool
) -> None:
    """Every case for each group of callers (with its Checker options), then one assertion listing all failures."""
    failures: list[str] = []
    cases = 0
    for callers, options in groups:
        for caller in callers:
            checker = Checker(client, world, caller, reps_see_team, **options)
            await checker.run(world.bundles)
            failures += checker.failures
            cases += checker.cases
    print(f"visibility matrix, reps_see_team={reps_see_team}: {cases} cases checked")
    assert not failures, f"{len(failures)} of {cases} cases failed:\n" + "\n".join(failures)


def _reps(world: World) -> list[Caller]:
    return [c for c in world.callers if c.role == "rep"]


def _others(world: World) -> list[Caller]:
    return [c for c in world.callers if c.role != "rep"]


# A rep's team feed is checked on its own (test_rep_team_feed_shows_only_what_the_rep_sees).
REP_FEEDS = ("org", "me")


async def test_matrix_with_reps_seeing_only_their_own(session: AsyncSession, client: httpx.AsyncClient) -> None:
    world = await build_world(session, client)
    assert not _relations_covered(world)
    await set_reps_see_team(client, world, False)
    await run_matrix(client, world, [(_others(world), {}), (_reps(world), {"feed_scopes": REP_FEEDS})], False)


async def test_matrix_with_reps_seeing_their_team_others_unchanged(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    """The setting changes nothing for anyone but reps."""
    world = await build_world(session, client)
    await set_reps_see_team(client, world, True)
    await run_matrix(client, world, [(_others(world), {})], True)


async def test_matrix_with_reps_seeing_their_team(session: AsyncSession, client: httpx.AsyncClient) -> None:
    world = await build_world(session, client)
    await set_reps_see_team(client, world, True)
    await run_matrix(client, world, [(_reps(world), {"feed_scopes": REP_FEEDS})], True)


async def test_rep_team_feed_shows_only_what_the_rep_sees(session: AsyncSession, client: httpx.AsyncClient) -> None:
    world = await build_world(session, client)
    await set_reps_see_team(client, world, False)
    failures: list[str] = []
    for caller in _reps(world):
        checker = Checker(client, world, caller, False, feed_scopes=("team",))
        await checker.feed()
        failures += checker.failures
    assert not failures, "\n".join(failures)


# Reassignment: (who, whose record, to whom, status). A manager assigns within their subtree, an admin or an API key
# anywhere in the organisation, a rep not at all: 422 at #/owner_id for their own record (they may only assign to
# themselves), 403 for a record they see but is not theirs; what a caller cannot see is 404 as always.
# In order: a 200 changes the owner, and the later cases are written knowing it.
REASSIGN: tuple[tuple[str, str, str, int], ...] = (
    ("manager", "owned by north1", "sub1", 200),  # down into the sub-team
    ("manager", "owned by north1", "north1", 200),  # and back (now sub1's)
    ("manager", "owned by sub2", "north2", 200),
    ("manager", "owned by north1", "south1", 422),  # a sibling team
    ("manager", "owned by north1", "root", 422),  # the parent team
    ("manager", "owned by north1", "marketing", 422),
    ("manager", "owned by north1", "admin", 422),
    ("manager", "owned by north1", "b_rep", 422),  # another organisation
    ("manager", "owned by south1", "north1", 404),  # outside the subtree: not even seen
    ("manager", "root's, shared with manager", "manager", 403),  # shared: seen, not in their charge
    ("rep north1", "owned by north1", "north2", 422),
    ("rep north1", "owned by north1", "north1", 200),  # no change
    ("rep north1", "south2's, shared with north1", "north1", 403),
    ("rep north1", "owned by north2", "north1", 404),  # reps_see_team is off here
    ("marketing", "owned by north1", "north2", 403),
    ("org B admin", "owned by north1", "b_rep", 404),
    ("admin", "owned by south1", "north1", 200),
    ("admin", "owned by south2", "root", 200),
    ("admin", "owned by root", "b_rep", 422),
    ("api key (all scopes)", "owned by north2", "south1", 200),
)


async def test_reassignment(session: AsyncSession, client: httpx.AsyncClient) -> None:
    world = await build_world(session, client)
    await set_reps_see_team(client, world, False)
    callers = {c.name: c for c in world.callers}
    bundles = {b.label: b for b in world.bundles}
    failures: list[str] = []
    cases = 0
    # Deals first, companies last: a record is also seen through its company (and a deal through its contact), so
    # moving a company changes who sees its contacts and deals.
    for kind, path in (("deal", "deals"), ("contact", "contacts"), ("company", "companies")):
        owners = {label: b.owner.id for label, b in bundles.items()}
        for caller_name, label, new_owner, want in REASSIGN:
            cases += 1
            url = f"{V1}/{path}/{bundles[label].ids[kind]}"
            target = world.users[new_owner].id
            response = await client.patch(url, json={"owner_id": str(target)}, headers=callers[caller_name].headers)
            where = f"[{caller_name}] PATCH {kind} {label} owner → {new_owner}"
            if response.status_code != want:
                failures.append(f"{where}: {response.status_code}, expected {want}: {response.text[:300]}")
            elif want == 422:
                pointers = [e.get("pointer") for e in response.json().get("errors", [])]
                if pointers != ["#/owner_id"]:
                    failures.append(f"{where}: 422 at {pointers}, expected at #/owner_id")
            if want == 200:
                owners[label] = target
            # Whatever happened, the owner is what it should be now (a refusal writes nothing).
            now = await client.get(url, headers=world.admin_headers)
            if now.json()["owner_id"] != str(owners[label]):
                failures.append(f"{where}: owner is now {now.json()['owner_id']}, expected {owners[label]}")
    print(f"reassignment: {cases} cases checked")
    assert not failures, f"{len(failures)} of {cases} cases failed:\n" + "\n".join(failures)


async def test_rep_cannot_take_over_a_teammates_record(session: AsyncSession, client: httpx.AsyncClient) -> None:
    """With reps_see_team on a rep sees a teammate's records but does not run them."""
    world = await build_world(session, client)
    await set_reps_see_team(client, world, True)
    rep = next(c for c in world.callers if c.name == "rep north1")
    teammates = next(b for b in world.bundles if b.label == "owned by north2")
    for kind, path in (("company", "companies"), ("contact", "contacts"), ("deal", "deals")):
        url = f"{V1}/{path}/{teammates.ids[kind]}"
        assert (await client.get(url, headers=rep.headers)).status_code == 200
        assert rep.user is not None
        response = await client.patch(url, json={"owner_id": str(rep.user.id)}, headers=rep.headers)
        assert response.status_code == 403, response.text


# Records whose parts have different owners: a contact and a deal kept by a rep whose company was moved to another
# team. The rep still sees the contact, the deal and the call (theirs), and not the company.


@dataclass
class Split:
    world: World
    rep: Caller
    word: str
    company_id: str
    contact_id: str
    deal_id: str
    call_id: str


async def split_client(session: AsyncSession, client: httpx.AsyncClient) -> Split:
    world = await build_world(session, client)
    await set_reps_see_team(client, world, False)
    rep = next(c for c in world.callers if c.name == "rep north1")
    owner = world.users["north1"]
    word = "Xylocarp"
    company = await make_company(session, owner, name=f"{word} Works")
    contact = await make_contact(session, owner, name="Vera Quintal", company_id=company.id)
    deal = await make_deal(session, owner, title="Spring order", company_id=company.id, contact_id=contact.id)
    call = await make_activity(session, owner, kind="call", subject="First call", deal_id=deal.id)
    # An admin moves the company (not its contact or deal) to another team.
    moved = await client.patch(
        f"{V1}/companies/{company.id}", json={"owner_id": str(world.users["south1"].id)}, headers=world.admin_headers
    )
    assert moved.status_code == 200, moved.text
    return Split(world, rep, word, str(company.id), str(contact.id), str(deal.id), str(call.id))


async def test_split_client_records_and_cards(session: AsyncSession, client: httpx.AsyncClient) -> None:
    s = await split_client(session, client)
    h = s.rep.headers
    assert (await client.get(f"{V1}/companies/{s.company_id}", headers=h)).status_code == 404
    assert (await client.get(f"{V1}/clients/{s.company_id}/card", headers=h)).status_code == 404
    assert (await client.get(f"{V1}/clients/{s.company_id}/timeline", headers=h)).status_code == 404
    for url in (f"{V1}/contacts/{s.contact_id}", f"{V1}/deals/{s.deal_id}", f"{V1}/activities/{s.call_id}"):
        assert (await client.get(url, headers=h)).status_code == 200, url
    card = await client.get(f"{V1}/clients/{s.contact_id}/card", headers=h)
    assert card.status_code == 200, card.text
    assert card.json()["company"] is None
    assert _ids(card.json()["open_deals"]) == {s.deal_id}
    hits = (await client.get(f"{V1}/search", params={"q": s.word}, headers=h)).json()["items"]
    assert s.company_id not in _ids(hits)
    companies = await client.get(f"{V1}/companies", params={"limit": 200}, headers=h)
    assert s.company_id not in _ids(companies.json()["items"])


async def test_split_client_feeds_name_only_what_the_rep_sees(session: AsyncSession, client: httpx.AsyncClient) -> None:
    s = await split_client(session, client)
    leaks = []
    for url, params in (
        (f"{V1}/clients/{s.contact_id}/card", {}),
        (f"{V1}/clients/{s.contact_id}/timeline", {"limit": 200}),
        (f"{V1}/deals/{s.deal_id}/timeline", {"limit": 200}),
        (f"{V1}/feed", {"scope": "org", "limit": 200}),
        (f"{V1}/feed", {"scope": "me", "limit": 200}),
    ):
        response = await client.get(url, params=params, headers=s.rep.headers)
        assert response.status_code == 200, response.text
        if s.word.lower() in response.text.lower():
            leaks.append(f"GET {url} {params} names the company")
    assert not leaks, "\n".join(leaks)
