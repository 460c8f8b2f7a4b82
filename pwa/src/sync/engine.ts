// The sync engine (DESIGN §7): push the outbox in order, then pull the working set's difference, whenever there
// is a reason to (start, online, the app shown again, a timer, a poke, a local change). It stops at the first
// transport failure and tries again with backoff; conflicts and rejections are kept for the Sync screen.
import { API, ORIGIN, type MutationResult, type PullPage, SignedOut, TransportError, authFetch } from '../api/client'
import { db, ENTITIES, type Entity, type FieldbookDB, type Issue, type OutboxRow } from '../db/db'
import { replayOutbox } from '../db/local'

export const PUSH_BATCH = 100
export const PULL_LIMIT = 500

export type SyncState = 'idle' | 'syncing' | 'offline' | 'signed-out' | 'error'

/** A non-transport failure (a 5xx, a 429, an unexpected answer): retried with backoff like a transport failure,
 *  and not before the server's Retry-After (in seconds; 0 when it sent none). */
export class ServerError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly retryAfter = 0,
  ) {
    super(`${status}: ${message}`)
  }
}

/** Retry-After as delay-seconds (what the API sends); 0 when absent or an HTTP date. */
function retryAfter(response: Response): number {
  const seconds = Number(response.headers.get('Retry-After') ?? '')
  return Number.isFinite(seconds) && seconds > 0 ? seconds : 0
}

const request = (url: string, init?: RequestInit) => authFetch(new Request(new URL(url, ORIGIN), init))

/** A request that must succeed: any other answer is a ServerError. */
async function call(url: string, init?: RequestInit): Promise<Response> {
  const response = await request(url, init)
  if (!response.ok) throw new ServerError(response.status, `${url}: ${await response.text()}`, retryAfter(response))
  return response
}

const TOO_LARGE = 413

const REST: Partial<Record<Entity, string>> = {
  company: 'companies',
  contact: 'contacts',
  deal: 'deals',
  activity: 'activities',
}

/** Which record a mutation is about. */
export function target(row: OutboxRow): { entity: Entity; id: string } | null {
  const [entity] = row.name.split('.')
  const { id } = row.args
  if (!id) return null
  return { entity: entity === 'task' ? 'activity' : (entity as Entity), id }
}

/** Every record a mutation made or changed on the device: its target, and a call's next step. */
function touched(row: OutboxRow): { entity: Entity; id: string }[] {
  const main = target(row)
  const step = (row.args.next_step as { id?: string } | null | undefined)?.id
  return [...(main ? [main] : []), ...(step ? [{ entity: 'activity' as const, id: step }] : [])]
}

/** A rejected change must not linger on the device: read each record it touched back, or drop it when the server
 *  has none. Issues keep `unread` until then, so a read-back cut short by the network is done on the next sync. */
async function restore(store: FieldbookDB): Promise<void> {
  for (const issue of await store.issue.filter((i) => Boolean(i.unread)).toArray()) {
    for (const what of touched(issue.mutation)) {
      const path = REST[what.entity]
      if (!path) continue
      const response = await request(`${API}/${path}/${what.id}`)
      const missing = response.status === 404 || response.status === 410
      if (!missing && !response.ok)
        throw new ServerError(response.status, `reading back ${what.entity} ${what.id}`, retryAfter(response))
      const found = missing ? null : ((await response.json()) as { status?: string })
      // A closed deal has left the working set, and the server will not send its removal again.
      if (found && !(what.entity === 'deal' && found.status !== 'open'))
        await store.records(what.entity).put(found as never)
      else await store.records(what.entity).delete(what.id)
    }
    await store.issue.update(issue.id, { unread: false })
  }
}

async function settle(store: FieldbookDB, rows: OutboxRow[], results: MutationResult[], last: number): Promise<void> {
  const sent = new Map(rows.map((row) => [row.id, row]))
  await store.transaction(
    'rw',
    [store.outbox, store.issue, store.deal, store.company, store.contact, store.activity],
    async () => {
      for (const result of results) {
        const row = sent.get(result.id)
        if (!row || result.status === 'applied' || result.status === 'duplicate') continue
        const issue: Issue = {
          id: result.id,
          mutation: row,
          status: result.status,
          conflicts: result.conflicts ?? [],
          record: result.record ?? null,
          problem: result.problem ?? null,
          at: new Date().toISOString(),
          unread: result.status === 'rejected',
        }
        await store.issue.put(issue)
        const what = target(row)
        if (result.record && what) await store.records(what.entity).put(result.record as never)
      }
      await store.outbox.where('id').belowOrEqual(last).delete()
    },
  )
}

/** Pushes the outbox, oldest first, in batches; returns how many mutations the server took. */
export async function push(store: FieldbookDB = db): Promise<number> {
  const clientId = await store.getMeta<string>('client_id')
  let taken = 0
  let batch = PUSH_BATCH
  for (;;) {
    const rows = await store.outbox.orderBy('id').limit(batch).toArray()
    if (!rows.length || !clientId) {
      await restore(store)
      return taken
    }
    let response: Response
    try {
      response = await call(`${API}/sync/push`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          client_id: clientId,
          mutations: rows.map((row) => ({
            id: row.id,
            name: row.name,
            args: row.args,
            ...(row.base_version ? { base_version: row.base_version } : {}),
          })),
        }),
      })
    } catch (error) {
      // Over the server's body limit (long notes typed offline): smaller batches; a change too large on its own is
      // refused here as the server would, so the queue never sticks behind it.
      if (!(error instanceof ServerError && error.status === TOO_LARGE)) throw error
      if (rows.length > 1) batch = Math.ceil(rows.length / 2)
      else await refuseTooLarge(store, rows[0])
      continue
    }
    const body = (await response.json()) as { last_mutation_id: number; results: MutationResult[] }
    await settle(store, rows, body.results, body.last_mutation_id)
    taken += rows.length
  }
}

async function refuseTooLarge(store: FieldbookDB, row: OutboxRow): Promise<void> {
  const id = row.id ?? 0
  const problem = { status: TOO_LARGE, title: 'Payload too large', detail: 'This change is too large to send.' }
  await store.transaction('rw', [store.outbox, store.issue], async () => {
    const at = new Date().toISOString()
    await store.issue.put({
      id,
      mutation: row,
      status: 'rejected',
      conflicts: [],
      record: null,
      problem,
      at,
      unread: true,
    })
    await store.outbox.delete(id)
  })
}

/** Stores one pulled page and its cursor together, then shows queued changes over the fresh records. The first
 *  page after a reset replaces everything in the same transaction: the device is never left empty. */
async function store(target: FieldbookDB, page: PullPage, reset: boolean): Promise<void> {
  const tables = [...ENTITIES.map((entity) => target.records(entity)), target.meta, target.outbox]
  await target.transaction('rw', tables, async () => {
    if (reset) await Promise.all(ENTITIES.map((entity) => target.records(entity).clear()))
    for (const entity of ENTITIES) {
      const removed = page.remove[entity] ?? []
      if (removed.length) await target.records(entity).bulkDelete(removed)
      const put = page.put[entity] ?? []
      if (put.length) await target.records(entity).bulkPut(put as never[])
    }
    await target.setMeta('cursor', page.cursor)
    await replayOutbox(target)
  })
}

/** Pulls until the server has nothing more; starts afresh when the server no longer knows the cursor. */
export async function pull(target: FieldbookDB = db): Promise<number> {
  const clientId = await target.getMeta<string>('client_id')
  let records = 0
  let reset = false
  for (;;) {
    const cursor = reset ? null : await target.getMeta<string | null>('cursor')
    const query = new URLSearchParams({ client_id: clientId ?? '', limit: String(PULL_LIMIT) })
    if (cursor) query.set('cursor', cursor)
    const page = (await (await call(`${API}/sync/pull?${query}`)).json()) as PullPage
    if (page.reset_required) {
      reset = true
      continue
    }
    await store(target, page, reset)
    reset = false
    records += ENTITIES.reduce((n, e) => n + (page.put[e]?.length ?? 0) + (page.remove[e]?.length ?? 0), 0)
    if (!page.has_more) return records
  }
}

/** Exponential backoff with full jitter, 1 s to 1 min. */
export function backoff(failures: number, random: () => number = Math.random): number {
  return Math.round(random() * Math.min(60_000, 1000 * 2 ** Math.min(failures, 6)))
}

export interface Status {
  state: SyncState
  lastSync: string | null
  error: string | null
}

/** Runs push-then-pull one at a time (across tabs too, through a Web Lock), again when asked during a run. */
export class Engine extends EventTarget {
  status: Status = { state: 'idle', lastSync: null, error: null }
  private running: Promise<void> | null = null
  private again = false
  private failures = 0
  private retry: ReturnType<typeof setTimeout> | undefined

  constructor(readonly store: FieldbookDB = db) {
    super()
  }

  private set(next: Partial<Status>): void {
    this.status = { ...this.status, ...next }
    this.dispatchEvent(new Event('status'))
  }

  /** Asks for a sync; resolves when the run that covers this request has finished. */
  sync(): Promise<void> {
    if (this.running) {
      this.again = true
      return this.running
    }
    this.running = this.loop()
    return this.running
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false
        await this.once()
      } while (this.again)
    } finally {
      // In the same step as the last check of `again`: a request made after it starts a new run.
      this.running = null
    }
  }

  private async once(): Promise<void> {
    clearTimeout(this.retry)
    if (!(await this.store.getMeta('session')) || (await this.store.getMeta('signed_out'))) {
      this.set({ state: 'signed-out' })
      return
    }
    this.set({ state: 'syncing' })
    const run = async () => {
      await push(this.store)
      await pull(this.store)
    }
    try {
      const locks = globalThis.navigator?.locks
      if (locks) await locks.request('fieldbook-sync', run)
      else await run()
      this.failures = 0
      const now = new Date().toISOString()
      await this.store.setMeta('last_sync', now)
      this.set({ state: 'idle', lastSync: now, error: null })
    } catch (error) {
      if (error instanceof SignedOut) {
        this.set({ state: 'signed-out', error: null })
        return
      }
      this.failures += 1
      const offline = error instanceof TransportError
      this.set({ state: offline ? 'offline' : 'error', error: offline ? null : String(error) })
      // A rate limit (429) says when to come back: never sooner.
      const floor = error instanceof ServerError ? error.retryAfter * 1000 : 0
      this.retry = setTimeout(() => void this.sync(), Math.max(backoff(this.failures), floor))
    }
  }
}
