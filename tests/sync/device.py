"""A simulated installed app: a local store, an outbox and a pull cursor, talking to the API over HTTP as the PWA
does (DESIGN §7)."""

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from api.core.ids import new_id

PUSH = "/api/v1/sync/push"
PULL = "/api/v1/sync/pull"


@dataclass
class Device:
    headers: dict[str, str]
    client_id: uuid.UUID = field(default_factory=uuid.uuid4)
    # {entity: {id: record}}
    store: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    next_mutation: int = 1
    cursor: str | None = None
    pulls: int = 0

    def queue(self, name: str, args: dict[str, Any], base_version: int | None = None) -> dict[str, Any]:
        mutation: dict[str, Any] = {"id": self.next_mutation, "name": name, "args": args}
        if base_version is not None:
            mutation["base_version"] = base_version
        self.next_mutation += 1
        self.outbox.append(mutation)
        return mutation

    def new_id(self) -> str:
        return str(new_id())

    def get(self, entity: str, record_id: Any) -> dict[str, Any] | None:
        return self.store.get(entity, {}).get(str(record_id))

    async def send(self, client: httpx.AsyncClient, *, lose_response: bool = False) -> dict[str, Any] | None:
        """Push the outbox; drop what the server took. With `lose_response`, the server acts but the device never
        hears back, so it keeps its outbox and will send it again."""
        if not self.outbox:
            return None
        response = await client.post(
            PUSH, json={"client_id": str(self.client_id), "mutations": self.outbox}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        if lose_response:
            return None
        body: dict[str, Any] = response.json()
        self.outbox = [m for m in self.outbox if m["id"] > body["last_mutation_id"]]
        return body

    async def pull_page(self, client: httpx.AsyncClient, limit: int | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"client_id": str(self.client_id)}
        if self.cursor:
            params["cursor"] = self.cursor
        if limit:
            params["limit"] = limit
        response = await client.get(PULL, params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        self.pulls += 1
        if page["reset_required"]:
            self.store.clear()
            self.cursor = None
            return page
        for entity, ids in page["remove"].items():
            for record_id in ids:
                self.store.get(entity, {}).pop(record_id, None)
        for entity, records in page["put"].items():
            for record in records:
                self.store.setdefault(entity, {})[record["id"]] = record
        self.cursor = page["cursor"]
        return page

    async def pull(self, client: httpx.AsyncClient, limit: int | None = None) -> None:
        """Pull until the device is up to date."""
        for _ in range(1000):
            page = await self.pull_page(client, limit)
            if not page["has_more"]:
                return
        raise AssertionError("pull never finished")

    def held(self) -> dict[str, dict[str, int]]:
        """{entity: {id: version}} of what the device stores (empty kinds left out)."""
        return {e: {i: r["version"] for i, r in records.items()} for e, records in self.store.items() if records}
