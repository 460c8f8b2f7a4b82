"""Offline sync as a Hypothesis state machine (DESIGN §7): three installed apps and the server, in random order.

Each example is an organisation of its own: an admin working on the server (over REST) and two reps, A with two
phones (A1, A2) and B with one (B1). The phones edit offline (their outbox grows; nothing is sent), push (sometimes
losing the response, so the same mutations are sent again later), and pull (whole, or one small page). Meanwhile
the admin creates, renames, reassigns, deletes and unshares companies, and changes, moves and deletes deals.

The test keeps its own model of the server (`Server`): every write the test knows the server took, replayed in the
server's order (a push is replayed when it is sent, whether or not its response reaches the phone). From it, each
mutation's outcome is predicted exactly: applied, a conflict on a guarded deal field changed by someone else since
`base_version`, or rejected with 404 (cannot see it), 409 (closed deal, task done), 410 (deleted: deletes win) or
422 (a reference it cannot see); and a mutation sent again is a duplicate. The model also knows every record's
version, so a conflict is predicted without asking the server what changed.

At the end of each example every outbox is pushed and every phone pulled. Then each phone's store must equal what a
brand-new install of the same user pulls (the server's view of the working set), and both must equal the model's
working set, record by record: ids, versions and the fields the test wrote. The change log must show each applied
mutation's effect exactly once, and each mutation must have had exactly one answer that was not "duplicate": the
one to the first push that carried it.

The machine runs its rules synchronously on an event loop of its own, against a committed database (the conftest
`db` fixture's rolled-back transaction cannot outlive one test function, which Hypothesis examples need).
"""

import asyncio
import json
import secrets
from collections import Counter, defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test
from sqlmodel import col, select

from api.auth.models import Role
from api.core.changes import Change
from api.core.db import Database, make_engine
from api.main import create_app
from tests.factories import make_org, make_team, make_user, sign_in
from tests.sync.device import PUSH, Device

SETTINGS = settings(
    max_examples=20,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,  # the same examples on every run and machine
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FAR = "2030-01-01T09:00:00Z"  # tasks due then are never overdue while the test runs
# A deal's fields derived from its activities: logging a call refreshes them without a new version (no one's pending
# edit of the deal should turn stale for it, see `api.deals.deals.touch`), so a phone keeps the pulled values.
DERIVED = {"deal": ("last_activity_at", "rots_at", "rotten")}
STAGE_GUARDS = frozenset({"stage_id", "status"})
ANY = "*"  # an effect whose new value the test cannot know (a completion time)
T = TypeVar("T")


class World:
    """What the examples share: an event loop, the app on the committed database, an HTTP client to it, and the
    outcomes seen (to check that the run exercised them all)."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.engine = make_engine(url)
        self.database = Database(self.engine)
        transport = httpx.ASGITransport(app=create_app(database=self.database))
        self.client = httpx.AsyncClient(transport=transport, base_url="http://test")
        self.seen: Counter[str] = Counter()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        self.run(self.client.aclose())
        self.run(self.engine.dispose())
        self.loop.close()


# The model of the server: what the test knows it holds. Ids are strings, as the API shows them.


@dataclass
class CompanyState:
    owner: str
    name: str
    tags: list[str] = field(default_factory=list)
    shared: set[str] = field(default_factory=set)
    deleted: bool = False
    version: int = 1


@dataclass
class ContactState:
    owner: str
    company: str
    title: str
    version: int = 1


@dataclass
class DealState:
    owner: str
    company: str | None
    title: str
    amount: int
    stage: str
    status: str = "open"
    deleted: bool = False
    version: int = 1
    # (version, actor, guarded fields that version changed): what a later base_version is compared with.
    history: list[tuple[int, str, frozenset[str]]] = field(default_factory=list)

    def bump(self, actor: str, guarded: frozenset[str]) -> None:
        self.version += 1
        self.history.append((self.version, actor, guarded))

    def changed_by_others(self, user: str, since: int) -> frozenset[str]:
        return frozenset().union(*(f for v, actor, f in self.history if v > since and actor != user))


@dataclass
class ActivityState:
    owner: str
    kind: str
    company: str | None
    deal: str | None
    done: bool
    version: int = 1


class Server:
    """Who sees what (api/sharing/visibility.py) and what a user's working set is (api/sync/working_set.py), for
    the records this test makes: reps who see only their own and shared records, contacts at a company, activities
    and deals owned by whoever made them, nothing older than the 90-day window."""

    def __init__(self) -> None:
        self.company: dict[str, CompanyState] = {}
        self.contact: dict[str, ContactState] = {}
        self.deal: dict[str, DealState] = {}
        self.activity: dict[str, ActivityState] = {}

    def reaches_company(self, user: str, company_id: str | None) -> bool:
        """Owned or shared, deleted or not: what a contact, deal or activity is seen through."""
        company = self.company.get(company_id or "")
        return company is not None and (company.owner == user or user in company.shared)

    def sees_company(self, user: str, company_id: str | None) -> bool:
        return self.reaches_company(user, company_id) and not self.company[company_id or ""].deleted

    def sees_contact(self, user: str, contact_id: str) -> bool:
        contact = self.contact.get(contact_id)
        return contact is not None and (contact.owner == user or self.reaches_company(user, contact.company))

    def reaches_deal(self, user: str, deal_id: str | None) -> bool:
        deal = self.deal.get(deal_id or "")
        return deal is not None and (deal.owner == user or self.reaches_company(user, deal.company))

    def sees_deal(self, user: str, deal_id: str | None) -> bool:
        return self.reaches_deal(user, deal_id) and not self.deal[deal_id or ""].deleted

    def sees_activity(self, user: str, activity_id: str) -> bool:
        activity = self.activity.get(activity_id)
        return activity is not None and (
            activity.owner == user
            or self.reaches_company(user, activity.company)
            or self.reaches_deal(user, activity.deal)
        )

    def working_set(self, user: str) -> dict[str, set[str]]:
        companies = {i for i, c in self.company.items() if not c.deleted and (c.owner == user or user in c.shared)}
        contacts = {i for i, c in self.contact.items() if c.owner == user or c.company in companies}
        deals = {
            i
            for i, d in self.deal.items()
            if d.status == "open" and not d.deleted and (d.owner == user or d.company in companies)
        }
        activities = {
            i for i, a in self.activity.items() if a.owner == user or a.company in companies or a.deal in deals
        }
        return {"company": companies, "contact": contacts, "deal": deals, "activity": activities}


@dataclass
class User:
    id: str
    headers: dict[str, str]


@dataclass
class App:
    """One phone: the simulated app, whose user it is, and what the test knows about it."""

    tag: str
    number: int
    user: User
    device: Device
    # Records this phone created that it has not pulled yet: {id: (kind, mutation id)}. The app shows them from its
    # outbox, so later offline edits may use them.
    pending: dict[str, tuple[str, int]] = field(default_factory=dict)
    # Deals it closed and tasks it completed, shown so until it pulls: it does not close or complete them again.
    closed: set[str] = field(default_factory=set)
    # The last mutation id the server has taken from this phone (whether or not the phone heard of it).
    taken: int = 0


Outcome = tuple[str, int | None, list[str]]  # status, problem status, conflicts
APPLIED: Outcome = ("applied", None, [])
DUPLICATE = {"status": "duplicate", "record": None, "conflicts": [], "problem": None}


def rejected(status: int) -> Outcome:
    return ("rejected", status, [])


PHONE = st.integers(0, 2)
PICK = st.integers(0, 2**16)


class SyncMachine(RuleBasedStateMachine):
    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        self.client = world.client
        self.server = Server()
        # Order of birth of every record id the test made: picks follow it (uuid7s made in one millisecond sort at
        # random), so that an example replays the same.
        self.born: dict[str, int] = {}
        self.changes_made = 0
        # Expected number of change-log rows: {(entity, id, field, new value as JSON, actor): n}, and creations.
        self.effects: Counter[tuple[str, str, str, str, str]] = Counter()
        self.creations: dict[tuple[str, str], int] = {}
        self.shares: Counter[tuple[str, str]] = Counter()
        # Every status each mutation got, push after push: {(phone, mutation id): [status, ...]}.
        self.answers: dict[tuple[str, int], list[str]] = defaultdict(list)
        self.failed = False
        self.world.run(self._start())

    # Set-up: an organisation, its people, a company each with a deal and a task, and every phone pulled once.

    async def _start(self) -> None:
        async with self.world.database.writer() as session:
            org = await make_org(session, f"Sync {secrets.token_hex(3)}")
            team = await make_team(session, org)
            admin = await make_user(session, org, role=Role.admin)
            rep_a = await make_user(session, org, role=Role.rep, team=team)
            rep_b = await make_user(session, org, role=Role.rep, team=team)
        self.org_id = org.id
        self.admin = User(str(admin.id), await sign_in(self.client, admin))
        self.a = User(str(rep_a.id), await sign_in(self.client, rep_a))
        self.b = User(str(rep_b.id), await sign_in(self.client, rep_b))
        self.apps = [
            App(tag, number, user, Device(user.headers))
            for number, (tag, user) in enumerate((("A1", self.a), ("A2", self.a), ("B1", self.b)))
        ]
        for owner in (self.a, self.b):
            await self._server_creates_company(owner, with_deal=True)
        for app in self.apps:
            await app.device.pull(self.client)
        reference = self.apps[0].device.store
        stages = sorted(reference["stage"].values(), key=lambda s: s["position"])
        self.open_stages = [s["id"] for s in stages if s["kind"] == "open"]
        self.lost_reasons = sorted(r["id"] for r in reference["lost_reason"].values() if r["is_active"])
        assert len(self.open_stages) >= 2 and self.lost_reasons

    # Helpers

    def _run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        try:
            self.world.run(coroutine)
        except BaseException:
            self.failed = True
            raise

    def _birth(self, record_id: str) -> str:
        self.born[record_id] = len(self.born)
        return record_id

    def _choose(self, ids: list[T], pick: int) -> T | None:
        return ids[pick % len(ids)] if ids else None

    def _held_first(self, held: set[str], ids: list[str]) -> list[str]:
        """`ids` in order of birth, only those in `held` if there are any."""
        return sorted([i for i in ids if i in held] or ids, key=self.born.__getitem__)

    def _known(self, app: App, kind: str) -> list[str]:
        """What the phone can pick from: what it stores and what it made offline. `task` means open tasks."""
        entity = "activity" if kind == "task" else kind
        stored = app.device.store.get(entity, {})
        ids = [i for i, r in stored.items() if kind != "task" or (r["kind"] == "task" and r["done_at"] is None)]
        ids += [i for i, (k, _) in app.pending.items() if k == kind]
        if kind in ("deal", "task"):
            ids = [i for i in ids if i not in app.closed]
        return sorted(set(ids), key=lambda i: (self.born.get(i, len(self.born)), i))

    def _version(self, app: App, entity: str, record_id: str) -> int | None:
        """The base version of an edit: the version the phone holds (None for a record it made offline)."""
        record = app.device.get(entity, record_id)
        return None if record is None else int(record["version"])

    def _marker(self, app: App) -> tuple[str, int]:
        """A name and an amount no one else writes: the change log then shows whether, and how often, they were."""
        mutation = app.device.next_mutation
        return f"{app.tag}-{mutation}", (app.number + 1) * 100_000 + mutation

    def _server_marker(self) -> tuple[str, int]:
        self.changes_made += 1
        return f"S-{self.changes_made}", 900_000 + self.changes_made

    def _effect(self, entity: str, record_id: str, name: str, value: Any, actor: str) -> None:
        self.effects[(entity, record_id, name, value if value == ANY else json.dumps(value), actor)] += 1

    # Offline edits on a phone: queued in its outbox, nothing sent.

    @rule(phone=PHONE, kind=st.sampled_from(["company", "contact", "deal", "call", "task"]), pick=PICK)
    def create_offline(self, phone: int, kind: str, pick: int) -> None:
        app = self.apps[phone]
        name, amount = self._marker(app)
        new = self._birth(app.device.new_id())
        companies = self._known(app, "company")
        if kind == "company":
            app.device.queue("company.create", {"id": new, "name": name})
        elif kind == "contact":
            company = self._choose(companies, pick)
            if company is None:
                return
            app.device.queue("contact.create", {"id": new, "name": name, "company_id": company, "title": "Buyer"})
        elif kind == "deal":
            args: dict[str, Any] = {"id": new, "title": name, "amount_minor": amount}
            if companies and pick % 4:  # now and then a deal of no company
                args["company_id"] = companies[pick % len(companies)]
            app.device.queue("deal.create", args)
        else:
            about = [("company_id", i) for i in companies] + [("deal_id", i) for i in self._known(app, "deal")]
            ref = self._choose(about, pick)
            if ref is None:
                return
            if kind == "call":
                app.device.queue("activity.log", {"id": new, "kind": "call", "outcome": "connected", ref[0]: ref[1]})
            else:
                app.device.queue("task.create", {"id": new, "subject": name, "due_at": FAR, ref[0]: ref[1]})
        app.pending[new] = (kind, app.device.next_mutation - 1)

    @rule(
        phone=PHONE,
        kind=st.sampled_from(
            ["company.name", "company.tags", "contact.title", "deal.title", "deal.amount", "deal.both"]
        ),
        pick=PICK,
    )
    def update_offline(self, phone: int, kind: str, pick: int) -> None:
        app = self.apps[phone]
        name, amount = self._marker(app)
        entity, what = kind.split(".")
        target = self._choose(self._known(app, entity), pick)
        if target is None:
            return
        args: dict[str, Any] = {"id": target}
        if kind == "company.name":
            args["name"] = name
        elif kind == "company.tags":
            args["tags"] = [name]
        elif kind == "contact.title":
            args["title"] = name
        else:
            if what in ("title", "both"):
                args["title"] = name
            if what in ("amount", "both"):
                args["amount_minor"] = amount
        app.device.queue(f"{entity}.update", args, self._version(app, entity, target))

    @rule(phone=PHONE, kind=st.sampled_from(["move", "win", "lose"]), pick=PICK, other=PICK)
    def close_or_move_offline(self, phone: int, kind: str, pick: int, other: int) -> None:
        app = self.apps[phone]
        deal = self._choose(self._known(app, "deal"), pick)
        if deal is None:
            return
        args: dict[str, Any] = {"id": deal}
        if kind == "move":
            args["stage_id"] = self.open_stages[other % len(self.open_stages)]
        elif kind == "lose":
            args["lost_reason_id"] = self.lost_reasons[other % len(self.lost_reasons)]
        if kind != "move":
            app.closed.add(deal)
        app.device.queue(f"deal.{kind}", args, self._version(app, "deal", deal))

    @rule(phone=PHONE, kind=st.sampled_from(["complete", "share", "unknown"]), pick=PICK)
    def other_offline(self, phone: int, kind: str, pick: int) -> None:
        app = self.apps[phone]
        if kind == "complete":
            task = self._choose(self._known(app, "task"), pick)
            if task is not None:
                app.closed.add(task)
                app.device.queue("task.complete", {"id": task}, self._version(app, "activity", task))
        elif kind == "share":
            company = self._choose(self._known(app, "company"), pick)
            colleague = self.b if app.user is self.a else self.a
            if company is not None:
                args = {"entity": "company", "entity_id": company, "user_ids": [colleague.id]}
                app.device.queue("share.create", args)
        else:
            # A record the server never had (the phone's data is corrupt, or the record is another tenant's).
            name = ["company.update", "contact.update", "deal.win", "task.complete"][pick % 4]
            app.device.queue(name, {"id": app.device.new_id()}, 1)

    # The network.

    def _sending(self, phone: int) -> App:
        """One of the phones with something to send."""
        apps = [app for app in self.apps if app.device.outbox]
        return apps[phone % len(apps)]

    @precondition(lambda self: any(app.device.outbox for app in self.apps))
    @rule(phone=PHONE)
    def push(self, phone: int) -> None:
        self._run(self._push(self._sending(phone), lose=False))

    @precondition(lambda self: any(app.device.outbox for app in self.apps))
    @rule(phone=PHONE)
    def push_and_lose_the_response(self, phone: int) -> None:
        self._run(self._push(self._sending(phone), lose=True))

    @rule(phone=PHONE)
    def pull(self, phone: int) -> None:
        self._run(self._pull(self.apps[phone], limit=None))

    @rule(phone=PHONE)
    def pull_one_small_page(self, phone: int) -> None:
        self._run(self._pull(self.apps[phone], limit=5))

    async def _pull(self, app: App, limit: int | None) -> None:
        if limit:  # one page only: the phone may stop halfway and push before pulling the rest
            page = await app.device.pull_page(self.client, limit)
            assert not page["reset_required"]
            if page["has_more"]:
                return
        else:
            await app.device.pull(self.client)
        # Up to date: what it made and the server took is in the store now (or was refused, or left the set).
        unsent = {m["id"] for m in app.device.outbox}
        app.pending = {i: (k, m) for i, (k, m) in app.pending.items() if m in unsent}
        app.closed = {i for i in app.closed if any(m["args"].get("id") == i for m in app.device.outbox)}

    async def _push(self, app: App, *, lose: bool) -> None:
        sent = list(app.device.outbox)
        if not sent:
            return
        if lose:
            # The server acts; the phone never hears (the test does, to check the outcome), keeps its outbox and
            # sends it again later.
            response = await self.client.post(
                PUSH,
                json={"client_id": str(app.device.client_id), "mutations": sent},
                headers=app.device.headers,
            )
            assert response.status_code == 200, response.text
            body = response.json()
        else:
            answer = await app.device.send(self.client)
            assert answer is not None
            body = answer
            assert app.device.outbox == [], "everything sent was taken"
        assert body["last_mutation_id"] == sent[-1]["id"]
        assert [r["id"] for r in body["results"]] == [m["id"] for m in sent]
        for mutation, result in zip(sent, body["results"], strict=True):
            self.answers[(app.tag, mutation["id"])].append(result["status"])
            if mutation["id"] <= app.taken:
                # Taken by an earlier push (whose answer may have been lost): nothing happens again.
                assert result == {**DUPLICATE, "id": mutation["id"]}, (mutation, result)
                self.world.seen["duplicate"] += 1
            else:
                self._check(app, mutation, result, self._replay(app, mutation))
        app.taken = body["last_mutation_id"]

    def _check(self, app: App, mutation: dict[str, Any], result: dict[str, Any], expected: Outcome) -> None:
        status, problem, _ = expected
        got = (result["status"], (result["problem"] or {}).get("status"), result["conflicts"])
        assert got == expected, f"{app.tag} {mutation}: expected {expected}, got {result}"
        self.world.seen[status if problem is None else f"{status} {problem}"] += 1
        if status == "rejected" or mutation["name"] == "share.create":
            assert result["record"] is None
            return
        # The record as the server has it now: its version must be the model's.
        entity = mutation["name"].split(".")[0].replace("task", "activity")
        record_id = mutation["args"]["id"]
        model: Any = getattr(self.server, entity)[record_id]
        assert result["record"]["id"] == record_id and result["record"]["version"] == model.version, (mutation, result)

    # Replaying a mutation the server took: its expected outcome, and the model updated as the server was.

    def _replay(self, app: App, mutation: dict[str, Any]) -> Outcome:
        name, args, user = mutation["name"], mutation["args"], app.user.id
        entity, action = name.split(".")
        if action in ("create", "log") and entity != "share":
            return self._replay_creation(user, name, args)
        if entity == "deal":
            return self._replay_deal(user, action, args, mutation.get("base_version"))
        s = self.server
        target = args.get("id") or args.get("entity_id")
        if name == "company.update":
            if not s.reaches_company(user, target):
                return rejected(404)
            company = s.company[target]
            if company.deleted:
                return rejected(410)  # deletes win
            for key in ("name", "tags"):
                if key in args:
                    setattr(company, key, args[key])
                    self._effect("company", target, key, args[key], user)
            company.version += 1
            return APPLIED
        if name == "contact.update":
            if not s.sees_contact(user, target):
                return rejected(404)
            s.contact[target].title = args["title"]
            s.contact[target].version += 1
            self._effect("contact", target, "title", args["title"], user)
            return APPLIED
        if name == "task.complete":
            if not s.sees_activity(user, target):
                return rejected(404)
            task = s.activity[target]
            if task.done:
                return rejected(409)
            task.done, task.version = True, task.version + 1
            self._effect("activity", target, "done_at", ANY, user)
            return APPLIED
        assert name == "share.create"
        if not s.sees_company(user, target):
            return rejected(404)
        company = s.company[target]
        colleague = args["user_ids"][0]
        if colleague != company.owner and colleague not in company.shared:
            company.shared.add(colleague)
            self.shares[(target, colleague)] += 1
        return APPLIED

    def _replay_creation(self, user: str, name: str, args: dict[str, Any]) -> Outcome:
        s, new = self.server, args["id"]
        entity = {"activity.log": "activity", "task.create": "activity"}.get(name, name.split(".")[0])
        self.creations[(entity, new)] = 0
        if name == "company.create":
            s.company[new] = CompanyState(user, args["name"])
        elif name == "contact.create":
            if not s.sees_company(user, args["company_id"]):
                return rejected(422)
            s.contact[new] = ContactState(user, args["company_id"], args["title"])
        elif name == "deal.create":
            company = args.get("company_id")
            if company is not None and not s.sees_company(user, company):
                return rejected(422)
            s.deal[new] = DealState(user, company, args["title"], args["amount_minor"], self.open_stages[0])
        else:
            company, deal = args.get("company_id"), args.get("deal_id")
            if company is not None and not s.sees_company(user, company):
                return rejected(422)
            if deal is not None:
                if not s.sees_deal(user, deal):
                    return rejected(422)
                # Filed under the deal's company too, when the user sees it.
                if s.sees_company(user, s.deal[deal].company):
                    company = s.deal[deal].company
            kind = "task" if name == "task.create" else args["kind"]
            s.activity[new] = ActivityState(user, kind, company, deal, done=kind != "task")
        self.creations[(entity, new)] = 1
        return APPLIED

    def _replay_deal(self, user: str, action: str, args: dict[str, Any], base: int | None) -> Outcome:
        deal_id = args["id"]
        if not self.server.reaches_deal(user, deal_id):
            return rejected(404)
        deal = self.server.deal[deal_id]
        if deal.deleted:
            return rejected(410)
        guards = frozenset({"amount_minor"} & args.keys()) if action == "update" else STAGE_GUARDS
        conflicts = sorted(guards & deal.changed_by_others(user, base)) if base is not None else []
        if action == "update":
            changed: frozenset[str] = frozenset()
            if "title" in args:
                deal.title = args["title"]
                self._effect("deal", deal_id, "title", args["title"], user)
            if "amount_minor" in args and not conflicts:
                deal.amount = args["amount_minor"]
                self._effect("deal", deal_id, "amount_minor", args["amount_minor"], user)
                changed = frozenset({"amount_minor"})
            if "title" in args or changed:
                deal.bump(user, changed)
            return ("conflict", None, conflicts) if conflicts else APPLIED
        if conflicts:
            return ("conflict", None, conflicts)  # a move, a win or a loss applies nothing then
        if deal.status != "open":
            return rejected(409)
        if action == "move":
            if args["stage_id"] != deal.stage:
                deal.stage = args["stage_id"]
                deal.bump(user, frozenset({"stage_id"}))
                self._effect("deal", deal_id, "stage_id", deal.stage, user)
            return APPLIED
        deal.status = "won" if action == "win" else "lost"
        deal.bump(user, STAGE_GUARDS)
        self._effect("deal", deal_id, "status", deal.status, user)
        return APPLIED

    # The server side: the admin works over REST (and the model follows).

    @rule(kind=st.sampled_from(["create", "rename", "reassign", "delete company", "unshare"]), pick=PICK, other=PICK)
    def server_edits_a_company(self, kind: str, pick: int, other: int) -> None:
        self._run(self._server_edits(kind, pick, other))

    @rule(kind=st.sampled_from(["amount", "move", "delete deal"]), pick=PICK, other=PICK)
    def server_edits_a_deal(self, kind: str, pick: int, other: int) -> None:
        self._run(self._server_edits(kind, pick, other))

    async def _server_edits(self, kind: str, pick: int, other: int) -> None:
        s, headers = self.server, self.admin.headers
        # Records some phone holds come first: editing those is what makes phones stale.
        held = {i for app in self.apps for records in app.device.store.values() for i in records}
        live = self._held_first(held, [i for i, c in s.company.items() if not c.deleted])
        deals = self._held_first(held, [i for i, d in s.deal.items() if not d.deleted])
        open_deals = self._held_first(held, [i for i in deals if s.deal[i].status == "open"])
        name, amount = self._server_marker()
        if kind == "create":
            await self._server_creates_company(self.a if pick % 2 else self.b, with_deal=other % 2 == 0)
        elif kind in ("rename", "reassign", "delete company", "unshare"):
            company_id = self._choose(live, pick)
            if company_id is None:
                return
            company, url = s.company[company_id], f"/api/v1/companies/{company_id}"
            if kind == "rename":
                response = await self.client.patch(url, json={"name": name}, headers=headers)
                assert response.status_code == 200, response.text
                company.name, company.version = name, company.version + 1
            elif kind == "reassign":
                owner = self.b.id if company.owner == self.a.id else self.a.id
                response = await self.client.patch(url, json={"owner_id": owner}, headers=headers)
                assert response.status_code == 200, response.text
                company.owner, company.version = owner, company.version + 1
            elif kind == "delete company":
                response = await self.client.delete(url, headers=headers)
                assert response.status_code == 204, response.text
                company.deleted, company.version = True, company.version + 1
            else:
                params = {"entity": "company", "entity_id": company_id}
                response = await self.client.get("/api/v1/shares", params=params, headers=headers)
                assert response.status_code == 200, response.text
                shares = {item["user_id"]: item["id"] for item in response.json()["items"]}
                assert set(shares) == company.shared
                user = self._choose(sorted(shares), other)
                if user is None:
                    return
                response = await self.client.delete(f"/api/v1/shares/{shares[user]}", headers=headers)
                assert response.status_code == 204, response.text
                company.shared.discard(user)
        elif kind == "delete deal":
            deal_id = self._choose(deals, pick)
            if deal_id is None:
                return
            response = await self.client.delete(f"/api/v1/deals/{deal_id}", headers=headers)
            assert response.status_code == 204, response.text
            s.deal[deal_id].deleted = True
            s.deal[deal_id].bump(self.admin.id, frozenset())
        else:
            deal_id = self._choose(open_deals, pick)
            if deal_id is None:
                return
            deal, url = s.deal[deal_id], f"/api/v1/deals/{deal_id}"
            if kind == "amount":
                response = await self.client.patch(url, json={"amount_minor": amount}, headers=headers)
                assert response.status_code == 200, response.text
                deal.amount = amount
                deal.bump(self.admin.id, frozenset({"amount_minor"}))
            else:
                stages = [stage for stage in self.open_stages if stage != deal.stage]
                stage = stages[other % len(stages)]
                response = await self.client.post(f"{url}/move", json={"stage_id": stage}, headers=headers)
                assert response.status_code == 200, response.text
                deal.stage = stage
                deal.bump(self.admin.id, frozenset({"stage_id"}))
            assert response.json()["version"] == deal.version

    async def _server_creates_company(self, owner: User, *, with_deal: bool = False) -> None:
        """A company for a rep; with a deal for them at it, and a task about the deal."""
        name, amount = self._server_marker()
        response = await self.client.post(
            "/api/v1/companies", json={"name": name, "owner_id": owner.id}, headers=self.admin.headers
        )
        assert response.status_code == 201, response.text
        company_id = self._birth(response.json()["id"])
        self.server.company[company_id] = CompanyState(owner.id, name)
        if not with_deal:
            return
        deal = {"title": name, "company_id": company_id, "owner_id": owner.id, "amount_minor": amount}
        response = await self.client.post("/api/v1/deals", json=deal, headers=self.admin.headers)
        assert response.status_code == 201, response.text
        deal_id = self._birth(response.json()["id"])
        stage = response.json()["stage_id"]
        self.server.deal[deal_id] = DealState(owner.id, company_id, name, amount, stage)
        task = {"kind": "task", "subject": name, "due_at": FAR, "deal_id": deal_id, "owner_id": owner.id}
        response = await self.client.post("/api/v1/activities", json=task, headers=self.admin.headers)
        assert response.status_code == 201, response.text
        task_id = self._birth(response.json()["activity"]["id"])
        self.server.activity[task_id] = ActivityState(owner.id, "task", company_id, deal_id, done=False)

    # The end of an example: everything sent, everything pulled, and every view the same.

    def teardown(self) -> None:
        if not self.failed:  # else the step that failed is the story: settling would only add noise
            self._run(self._settle_and_compare())

    async def _settle_and_compare(self) -> None:
        for app in self.apps:
            await self._push(app, lose=False)
        for (tag, mutation_id), statuses in self.answers.items():
            # The first push that carried it took it; every later one answered "duplicate".
            assert statuses[0] != "duplicate" and set(statuses[1:]) <= {"duplicate"}, (tag, mutation_id, statuses)
        queued = {(app.tag, i) for app in self.apps for i in range(1, app.device.next_mutation)}
        assert queued == set(self.answers)
        for app in self.apps:
            await app.device.pull(self.client)

        for user in (self.a, self.b):
            fresh = Device(user.headers)  # a new install: the server's view of the working set, from scratch
            await fresh.pull(self.client)
            for app in self.apps:
                if app.user is user:
                    assert app.device.held() == fresh.held(), app.tag
                    assert _comparable(app.device.store) == _comparable(fresh.store), app.tag
            self._compare_with_model(user, fresh)
            await self._compare_with_rest(user, fresh)
        await self._compare_change_log()

    def _compare_with_model(self, user: User, device: Device) -> None:
        """The working set the model predicts, and what the test wrote in each record of it."""
        s, held = self.server, device.held()
        for entity, ids in s.working_set(user.id).items():
            assert set(held.get(entity, {})) == ids, entity
        for i, r in device.store.get("company", {}).items():
            c = s.company[i]
            assert [r["name"], r["tags"], r["owner_id"], r["version"]] == [c.name, c.tags, c.owner, c.version], r
        for i, r in device.store.get("contact", {}).items():
            n = s.contact[i]
            assert [r["title"], r["company_id"], r["owner_id"], r["version"]] == [
                n.title,
                n.company,
                n.owner,
                n.version,
            ]
        for i, r in device.store.get("deal", {}).items():
            d = s.deal[i]
            got = [
                r["title"],
                r["amount_minor"],
                r["stage_id"],
                r["status"],
                r["owner_id"],
                r["company_id"],
                r["version"],
            ]
            assert got == [d.title, d.amount, d.stage, d.status, d.owner, d.company, d.version], r
        for i, r in device.store.get("activity", {}).items():
            a = s.activity[i]
            got = [r["kind"], r["company_id"], r["deal_id"], r["owner_id"], r["done_at"] is not None, r["version"]]
            assert got == [a.kind, a.company, a.deal, a.owner, a.done, a.version], r

    async def _compare_with_rest(self, user: User, device: Device) -> None:
        """Records read as the REST API reads them."""
        for company_id, record in device.store.get("company", {}).items():
            response = await self.client.get(f"/api/v1/companies/{company_id}", headers=user.headers)
            assert response.status_code == 200 and response.json() == record

    async def _compare_change_log(self) -> None:
        """Each applied mutation's effect is in the log exactly once; a refused creation left nothing."""
        async with self.world.database.reader() as session:
            rows = (await session.scalars(select(Change).where(col(Change.org_id) == self.org_id))).all()
        created: Counter[tuple[str, str]] = Counter()
        written: Counter[tuple[str, str, str, str, str]] = Counter()
        shared: Counter[tuple[str, str]] = Counter()
        for row in rows:
            key, actor = str(row.entity_id), str(row.actor_id)
            if row.op == "create":
                created[(row.entity, key)] += 1
                if row.entity == "share":
                    shared[(row.fields["entity_id"]["after"], row.fields["user_id"]["after"])] += 1
            elif row.op == "update":
                for name, values in row.fields.items():
                    written[(row.entity, key, name, json.dumps(values["after"]), actor)] += 1
                    written[(row.entity, key, name, ANY, actor)] += 1
        for creation, times in self.creations.items():
            assert created[creation] == times, creation
        for effect, times in self.effects.items():
            assert written[effect] == times, effect
        assert dict(shared) == dict(self.shares)


def _comparable(store: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, dict[str, Any]]]:
    return {
        entity: {i: {k: v for k, v in r.items() if k not in DERIVED.get(entity, ())} for i, r in records.items()}
        for entity, records in store.items()
        if records
    }


def test_phones_converge_and_every_mutation_takes_effect_once(committed_url: str) -> None:
    world = World(committed_url)
    try:
        run_state_machine_as_test(lambda: SyncMachine(world), settings=SETTINGS)
    finally:
        world.close()
    # The run met every kind of answer (else the machine, not the server, would be what passed).
    assert {"applied", "duplicate", "conflict", "rejected"} <= {key.split()[0] for key in world.seen}, world.seen
