// The sync engine (src/sync/engine.ts) against a fake server at the network boundary.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { SignedOut, TransportError, useTokens } from '../src/api/client'
import type { FieldbookDB, Issue } from '../src/db/db'
import { mutate, newId } from '../src/db/local'
import { Engine, PUSH_BATCH, type SyncState, ServerError, backoff, pull, push } from '../src/sync/engine'
import { CLIENT_ID, type FakeServer, company, deal, device, json, online, page } from './fake-server'

const AT = '2030-01-15T09:00:00.000Z'

let store: FieldbookDB
let server: FakeServer

beforeEach(async () => {
  store = await device()
  server = online()
})

afterEach(async () => {
  vi.useRealTimers()
  vi.restoreAllMocks()
  vi.unstubAllGlobals()
  await store.delete()
})

/** Queues `n` company creations; returns their mutation ids. */
async function queue(n: number): Promise<number[]> {
  const ids: number[] = []
  for (let i = 0; i < n; i++)
    ids.push(await mutate('company.create', { id: newId(), name: `Co ${i}` }, undefined, store))
  return ids
}

const outboxIds = async () => (await store.outbox.orderBy('id').toArray()).map((row) => row.id)

/** Resolves at the engine's next status in `states`. */
function until(engine: Engine, ...states: SyncState[]): Promise<SyncState> {
  return new Promise((resolve) => {
    const listener = () => {
      if (!states.includes(engine.status.state)) return
      engine.removeEventListener('status', listener)
      resolve(engine.status.state)
    }
    engine.addEventListener('status', listener)
  })
}

describe('push', () => {
  it('sends the outbox oldest first in batches of PUSH_BATCH, with no gaps, and drops what the server took', async () => {
    const ids = await queue(2 * PUSH_BATCH + 50)

    expect(await push(store)).toBe(ids.length)

    const batches = server.pushedIds
    expect(batches.map((batch) => batch.length)).toEqual([PUSH_BATCH, PUSH_BATCH, 50])
    expect(batches.flat()).toEqual(ids)
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBe(ids[i - 1] + 1)
    expect(server.pushes.every((r) => r.body.client_id === CLIENT_ID && r.token === 't')).toBe(true)
    expect(server.effects).toEqual(ids)
    expect(await store.outbox.count()).toBe(0)
  })

  it('sends what each mutation carries, and base_version only when there is one', async () => {
    const id = newId()
    await store.company.put(company(id))
    await mutate('company.update', { id, name: 'Renamed' }, 2, store)
    await mutate('company.update', { id, city: 'Lyon' }, undefined, store)

    await push(store)

    expect(server.pushes[0].body.mutations).toEqual([
      { id: expect.any(Number), name: 'company.update', args: { id, name: 'Renamed' }, base_version: 2 },
      { id: expect.any(Number), name: 'company.update', args: { id, city: 'Lyon' } },
    ])
  })

  it('drops the rows up to last_mutation_id and keeps the rest', async () => {
    const ids = await queue(5)
    // The server answers for the first three only (as it would a push cut short); the next push fails.
    server.intercept = (seen) => {
      if (seen.path !== '/api/v1/sync/push') return undefined
      if (server.pushes.length > 1) return 'drop'
      return json({ last_mutation_id: ids[2], results: ids.slice(0, 3).map((id) => ({ id, status: 'applied' })) })
    }

    await expect(push(store)).rejects.toBeInstanceOf(TransportError)

    expect(await outboxIds()).toEqual(ids.slice(3))
    expect(server.pushedIds).toEqual([ids, ids.slice(3)])
  })

  it('does nothing without a client id, and sends nothing when the outbox is empty', async () => {
    expect(await push(store)).toBe(0)
    await queue(1)
    await store.meta.delete('client_id')
    expect(await push(store)).toBe(0)
    expect(server.requests).toEqual([])
    expect(await store.outbox.count()).toBe(1)
  })

  it('stops at the first transport failure, drops nothing, and resends the same ids next time', async () => {
    const ids = await queue(PUSH_BATCH + 10)
    server.offline = true

    await expect(push(store)).rejects.toBeInstanceOf(TransportError)
    expect(server.pushes).toHaveLength(1)
    expect(await outboxIds()).toEqual(ids)

    server.offline = false
    await push(store)
    expect(server.pushedIds.slice(1)).toEqual([ids.slice(0, PUSH_BATCH), ids.slice(PUSH_BATCH)])
    expect(await store.outbox.count()).toBe(0)
  })

  it('leaves exactly-once to the server when a response is lost: the resend comes back as duplicates', async () => {
    const ids = await queue(3)
    server.intercept = (seen) =>
      seen.path === '/api/v1/sync/push' && server.pushes.length === 1 ? 'lose-response' : undefined

    await expect(push(store)).rejects.toBeInstanceOf(TransportError)
    expect(await outboxIds()).toEqual(ids)

    await push(store)
    expect(server.pushedIds).toEqual([ids, ids])
    expect(server.effects).toEqual(ids)
    expect(await store.outbox.count()).toBe(0)
    expect(await store.issue.count()).toBe(0)
  })

  it('treats a 5xx as a server error and keeps the outbox', async () => {
    const ids = await queue(2)
    server.intercept = () => json({ title: 'Unavailable' }, 503)

    await expect(push(store)).rejects.toBeInstanceOf(ServerError)
    expect(await outboxIds()).toEqual(ids)
  })

  it('stores a conflict as an issue with the server record, which replaces the local one, and drops the row', async () => {
    const id = newId()
    await store.deal.put(deal(id, { amount_minor: 100_00, version: 3 }))
    const mutationId = await mutate('deal.update', { id, amount_minor: 250_00, title: 'Bigger deal' }, 3, store)
    expect((await store.deal.get(id))?.amount_minor).toBe(250_00)
    const theirs = deal(id, { amount_minor: 900_00, title: 'Bigger deal', version: 5 })
    server.decide = (m) => ({ id: m.id, status: 'conflict', conflicts: ['amount_minor'], record: { ...theirs } })

    await push(store)

    const issue = await store.issue.get(mutationId)
    expect(issue).toMatchObject<Partial<Issue>>({
      id: mutationId,
      status: 'conflict',
      conflicts: ['amount_minor'],
      record: { ...theirs },
      problem: null,
    })
    expect(issue?.mutation).toMatchObject({ id: mutationId, name: 'deal.update', args: { id, amount_minor: 250_00 } })
    expect(await store.deal.get(id)).toEqual(theirs)
    expect(await store.outbox.count()).toBe(0)
  })

  it('stores a rejection as an issue and removes a created record the server does not have', async () => {
    const id = newId()
    const problem = { type: 'about:blank', title: 'Validation failed', status: 422, errors: [{ pointer: '#/name' }] }
    const mutationId = await mutate('contact.create', { id, name: '' }, undefined, store)
    expect(await store.contact.get(id)).toBeDefined()
    server.decide = (m) => ({ id: m.id, status: 'rejected', problem })

    await push(store)

    expect(await store.issue.get(mutationId)).toMatchObject<Partial<Issue>>({
      status: 'rejected',
      problem,
      record: null,
      conflicts: [],
    })
    const read = server.requests.find((r) => r.method === 'GET' && r.path === `/api/v1/contacts/${id}`)
    expect(read?.token).toBe('t')
    expect(await store.contact.get(id)).toBeUndefined()
    expect(await store.outbox.count()).toBe(0)
  })

  it('does not keep a refused creation when reading it back fails the first time', async () => {
    const id = newId()
    await mutate('contact.create', { id, name: '' }, undefined, store)
    server.decide = (m) => ({ id: m.id, status: 'rejected', problem: { title: 'Invalid' } })
    server.intercept = (seen) => (seen.path === `/api/v1/contacts/${id}` ? 'drop' : undefined)

    await expect(push(store)).rejects.toBeInstanceOf(TransportError)
    server.intercept = undefined
    await new Engine(store).sync()

    expect(await store.contact.get(id)).toBeUndefined()
  })

  it('removes the next step of a refused call too: the server never had it', async () => {
    const [call, step] = [newId(), newId()]
    await mutate('activity.log', { id: call, kind: 'call', next_step: { id: step, due_at: AT } }, undefined, store)
    expect(await store.activity.count()).toBe(2)
    server.decide = (m) => ({ id: m.id, status: 'rejected', problem: { title: 'Invalid' } })

    await push(store)

    expect(await store.activity.count()).toBe(0)
  })

  it('halves batches the server finds too large, and refuses a change too large on its own', async () => {
    const ids = await queue(8)
    const huge = ids[5]
    server.intercept = (seen) => {
      const sent: { id: number }[] = seen.body?.mutations ?? []
      const tooLarge = sent.length > 2 || sent.some((m) => m.id === huge)
      return seen.path === '/api/v1/sync/push' && tooLarge ? json({ title: 'Payload too large' }, 413) : undefined
    }

    await push(store)

    expect(server.effects).toEqual(ids.filter((id) => id !== huge))
    expect(await store.outbox.count()).toBe(0)
    expect(await store.issue.get(huge)).toMatchObject({ status: 'rejected', problem: { status: 413 } })
  })

  it('reads back a record whose refused change is already shown on the device', async () => {
    const id = newId()
    await store.company.put(company(id, { name: 'Server name', version: 4 }))
    await mutate('company.update', { id, name: 'Refused name' }, 4, store)
    server.decide = (m) => ({ id: m.id, status: 'rejected', problem: { title: 'Gone', status: 410 } })
    server.records.set(id, { ...company(id, { name: 'Server name', version: 4 }) })

    await push(store)

    expect((await store.company.get(id))?.name).toBe('Server name')
    expect(await store.issue.count()).toBe(1)
  })

  it('keeps pushing the rest of a batch after a conflict or a rejection', async () => {
    const ids = await queue(4)
    server.decide = (m) =>
      m.id === ids[1] ? { id: m.id, status: 'rejected', problem: { title: 'No' } } : { id: m.id, status: 'applied' }

    await push(store)

    expect(server.effects).toEqual([ids[0], ids[2], ids[3]])
    expect((await store.issue.toArray()).map((issue) => issue.id)).toEqual([ids[1]])
    expect(await store.outbox.count()).toBe(0)
  })
})

describe('pull', () => {
  it('stores puts, removes and the cursor, and pulls again while the server has more', async () => {
    const [a, b, gone] = [newId(), newId(), newId()]
    await store.company.put(company(gone))
    server.pages.push(
      page({ cursor: 'c1', has_more: true, put: { company: [company(a)] }, remove: { company: [gone] } }),
      page({ cursor: 'c2', has_more: false, put: { company: [company(b)], deal: [deal(newId())] } }),
    )

    expect(await pull(store)).toBe(4)

    expect((await store.company.toArray()).map((c) => c.id).sort()).toEqual([a, b].sort())
    expect(await store.deal.count()).toBe(1)
    expect(await store.getMeta('cursor')).toBe('c2')
    expect(server.pulls.map((r) => r.query.get('cursor'))).toEqual([null, 'c1'])
    expect(server.pulls.every((r) => r.query.get('client_id') === CLIENT_ID && r.query.get('limit') === '500')).toBe(
      true,
    )
  })

  it('stores a page and its cursor together: a page that fails to store leaves the cursor where it was', async () => {
    const [a, b, d] = [newId(), newId(), newId()]
    server.pages.push(
      page({ cursor: 'c1', has_more: true, put: { company: [company(a)] } }),
      page({
        cursor: 'c2',
        has_more: false,
        put: { company: [company(b)], deal: [deal(d)] },
        remove: { company: [a] },
      }),
    )
    // Deals are stored after companies: the page's company put and remove are written when this fails.
    const failDeal = () => {
      throw new Error('quota exceeded')
    }
    store.deal.hook('creating', failDeal)

    await expect(pull(store)).rejects.toThrow('quota exceeded')

    expect(await store.getMeta('cursor')).toBe('c1')
    expect((await store.company.toArray()).map((c) => c.id)).toEqual([a])
    expect(await store.deal.count()).toBe(0)

    store.deal.hook('creating').unsubscribe(failDeal)
    server.pages.push(page({ cursor: 'c2', put: { company: [company(b)], deal: [deal(d)] }, remove: { company: [a] } }))
    await pull(store)
    expect(server.pulls.at(-1)?.query.get('cursor')).toBe('c1')
    expect(await store.getMeta('cursor')).toBe('c2')
    expect((await store.company.toArray()).map((c) => c.id)).toEqual([b])
  })

  it('shows pending changes over the records it pulls', async () => {
    const id = newId()
    const created = newId()
    await store.company.put(company(id, { name: 'Old name', version: 1 }))
    await mutate('company.update', { id, name: 'New name' }, 1, store)
    await mutate('company.create', { id: created, name: 'Made offline' }, undefined, store)
    server.pages.push(page({ put: { company: [company(id, { name: 'Old name', city: 'Nantes', version: 2 })] } }))

    await pull(store)

    expect(await store.company.get(id)).toMatchObject({ name: 'New name', city: 'Nantes', version: 2 })
    expect((await store.company.get(created))?.name).toBe('Made offline')
    expect(await store.outbox.count()).toBe(2)
  })

  it('keeps the records until the fresh pull after a reset arrives', async () => {
    const kept = newId()
    await store.company.put(company(kept))
    await store.setMeta('cursor', 'too-old')
    server.pages.push(page({ cursor: null, reset_required: true }))
    server.intercept = (seen) => (seen.path === '/api/v1/sync/pull' && !seen.query.get('cursor') ? 'drop' : undefined)

    await expect(pull(store)).rejects.toBeInstanceOf(TransportError)

    expect(await store.company.get(kept)).toBeDefined()
    expect(await store.getMeta('cursor')).toBe('too-old')
  })

  it('on reset_required clears the records (not the outbox) and starts again without a cursor', async () => {
    const [stale, fresh, mine] = [newId(), newId(), newId()]
    await store.company.put(company(stale))
    await store.deal.put(deal(newId()))
    await store.setMeta('cursor', 'too-old')
    await mutate('company.create', { id: mine, name: 'Pending' }, undefined, store)
    server.pages.push(
      page({ cursor: null, reset_required: true }),
      page({ cursor: 'fresh-1', has_more: true, put: { company: [company(fresh)] } }),
      page({ cursor: 'fresh-2' }),
    )

    await pull(store)

    expect(server.pulls.map((r) => r.query.get('cursor'))).toEqual(['too-old', null, 'fresh-1'])
    expect((await store.company.toArray()).map((c) => c.id).sort()).toEqual([fresh, mine].sort())
    expect(await store.deal.count()).toBe(0)
    expect(await store.outbox.count()).toBe(1)
    expect(await store.getMeta('cursor')).toBe('fresh-2')
    expect(await store.getMeta('session')).toBeDefined()
    expect(await store.getMeta('client_id')).toBe(CLIENT_ID)
  })
})

describe('backoff', () => {
  it('stays within [0, min(60 s, 1 s × 2^n)] and grows with the failures', () => {
    const cap = (n: number) => Math.min(60_000, 1000 * 2 ** n)
    for (let n = 0; n <= 12; n++) {
      expect(backoff(n, () => 0)).toBe(0)
      expect(backoff(n, () => 0.999999)).toBeLessThanOrEqual(cap(n))
      for (let i = 0; i < 50; i++) {
        const delay = backoff(n)
        expect(delay).toBeGreaterThanOrEqual(0)
        expect(delay).toBeLessThanOrEqual(cap(n))
        expect(Number.isInteger(delay)).toBe(true)
      }
    }
    const highest = Array.from({ length: 10 }, (_, n) => backoff(n, () => 1))
    expect(highest).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000, 60_000])
  })
})

describe('Engine', () => {
  it('pushes then pulls, and reports idle with the time of the sync', async () => {
    const ids = await queue(2)
    const engine = new Engine(store)
    const states: SyncState[] = []
    engine.addEventListener('status', () => states.push(engine.status.state))

    await engine.sync()

    expect(states).toEqual(['syncing', 'idle'])
    expect(server.requests.map((r) => r.path)).toEqual(['/api/v1/sync/push', '/api/v1/sync/pull'])
    expect(server.effects).toEqual(ids)
    expect(engine.status.lastSync).toBe(await store.getMeta('last_sync'))
    expect(engine.status.error).toBeNull()
  })

  it('runs at most twice however often it is asked during a run', async () => {
    await queue(1)
    const engine = new Engine(store)

    const asked = Array.from({ length: 10 }, () => engine.sync())
    await Promise.all(asked)

    // One run, and one more for all the requests made during it.
    expect(server.pulls).toHaveLength(2)
    expect(server.pushes).toHaveLength(1)
    expect(engine.status.state).toBe('idle')

    await engine.sync()
    expect(server.pulls).toHaveLength(3)
  })

  it('does not lose a sync asked for just as a run ends', async () => {
    // Wherever the end of the last run falls in the microtask queue, a request made then is covered by a run.
    for (let hops = 0; hops <= 6; hops++) {
      const engine = new Engine(store)
      let asked: Promise<boolean> | undefined
      engine.addEventListener('status', () => {
        if (engine.status.state !== 'idle' || asked) return
        asked = (async () => {
          for (let i = 0; i < hops; i++) await null
          const before = server.pulls.length
          await engine.sync()
          return server.pulls.length > before
        })()
      })
      await engine.sync()
      expect(await asked, `asked ${hops} microtasks after idle`).toBe(true)
    }
  })

  it('goes offline on a transport failure, keeps the outbox and retries after the backoff', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    vi.spyOn(Math, 'random').mockReturnValue(0.5)
    const ids = await queue(3)
    const engine = new Engine(store)
    server.offline = true

    await engine.sync()

    expect(engine.status).toMatchObject({ state: 'offline', error: null })
    expect(await outboxIds()).toEqual(ids)
    expect(vi.getTimerCount()).toBe(1)

    // The retry fires after backoff(1) = 0.5 × 2 s, and fails again.
    await vi.advanceTimersByTimeAsync(999)
    expect(server.pushes).toHaveLength(1)
    const second = until(engine, 'offline', 'idle', 'error')
    await vi.advanceTimersByTimeAsync(1)
    expect(await second).toBe('offline')
    expect(server.pushes).toHaveLength(2)

    // The second failure in a row waits longer: backoff(2) = 0.5 × 4 s.
    server.offline = false
    await vi.advanceTimersByTimeAsync(1999)
    expect(server.pushes).toHaveLength(2)
    const third = until(engine, 'offline', 'idle', 'error')
    await vi.advanceTimersByTimeAsync(1)
    expect(await third).toBe('idle')

    expect(server.pushedIds).toEqual([ids, ids, ids])
    expect(server.effects).toEqual(ids)
    expect(await store.outbox.count()).toBe(0)
    expect(vi.getTimerCount()).toBe(0)

    // A success starts the backoff over: the next failure waits backoff(1) again.
    server.offline = true
    await engine.sync()
    await vi.advanceTimersByTimeAsync(999)
    expect(server.pulls).toHaveLength(2)
    const fourth = until(engine, 'offline', 'idle', 'error')
    await vi.advanceTimersByTimeAsync(1)
    expect(await fourth).toBe('offline')
    expect(server.pulls).toHaveLength(3)
  })

  it('reports an error on a 5xx, keeps the outbox and schedules a retry', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    vi.spyOn(Math, 'random').mockReturnValue(1)
    const ids = await queue(2)
    const engine = new Engine(store)
    server.intercept = () => json({ title: 'Bad gateway' }, 502)

    await engine.sync()

    expect(engine.status.state).toBe('error')
    expect(engine.status.error).toContain('502')
    expect(await outboxIds()).toEqual(ids)
    expect(vi.getTimerCount()).toBe(1)

    server.intercept = undefined
    const retried = until(engine, 'idle', 'error', 'offline')
    await vi.advanceTimersByTimeAsync(2000)
    expect(await retried).toBe('idle')
    expect(await store.outbox.count()).toBe(0)
  })

  it('waits out a 429 for at least its Retry-After before trying again', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    vi.spyOn(Math, 'random').mockReturnValue(1)
    const ids = await queue(1)
    const engine = new Engine(store)
    server.intercept = () =>
      new Response(JSON.stringify({ title: 'Too many requests' }), {
        status: 429,
        headers: { 'content-type': 'application/problem+json', 'Retry-After': '30' },
      })

    await engine.sync()
    expect(engine.status.state).toBe('error')
    expect(engine.status.error).toContain('429')
    server.intercept = undefined
    const pushesBefore = server.pushes.length

    // The first backoff (2 s) passes and the retry is still waiting: the server asked for 30.
    await vi.advanceTimersByTimeAsync(29_000)
    expect(vi.getTimerCount()).toBe(1)
    expect(server.pushes.length).toBe(pushesBefore)
    expect(await outboxIds()).toEqual(ids)

    const retried = until(engine, 'idle', 'error', 'offline')
    await vi.advanceTimersByTimeAsync(1_500)
    expect(await retried).toBe('idle')
    expect(await store.outbox.count()).toBe(0)
  })

  it('a sync asked for meanwhile replaces the scheduled retry', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    const engine = new Engine(store)
    server.offline = true
    await engine.sync()
    expect(vi.getTimerCount()).toBe(1)

    server.offline = false
    await engine.sync()
    expect(engine.status.state).toBe('idle')
    expect(vi.getTimerCount()).toBe(0)
  })

  it('reports signed-out without a session, and syncs nothing', async () => {
    await store.meta.delete('session')
    const engine = new Engine(store)
    await engine.sync()
    expect(engine.status.state).toBe('signed-out')

    await store.setMeta('session', { access_token: 't' })
    await store.setMeta('signed_out', true)
    await engine.sync()
    expect(engine.status.state).toBe('signed-out')
    expect(server.requests).toEqual([])
  })
})

describe('tokens', () => {
  it('renews the token on a 401 and retries with the new one', async () => {
    let current = 't'
    const renewed: string[] = []
    useTokens({
      access: async () => current,
      renew: async (rejected) => {
        renewed.push(rejected)
        current = 't2'
        return current
      },
    })
    server.tokens = new Set(['t2'])
    const ids = await queue(2)

    await push(store)

    expect(renewed).toEqual(['t'])
    expect(server.pushes.map((r) => r.token)).toEqual(['t', 't2'])
    expect(server.pushes[1].body).toEqual(server.pushes[0].body)
    expect(server.effects).toEqual(ids)
    expect(await store.outbox.count()).toBe(0)
  })

  it('signs out when the token cannot be renewed, keeping the outbox and not retrying', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    server.tokens = new Set()
    const ids = await queue(2)

    await expect(push(store)).rejects.toBeInstanceOf(SignedOut)

    const engine = new Engine(store)
    await engine.sync()
    expect(engine.status).toMatchObject({ state: 'signed-out', error: null })
    expect(await outboxIds()).toEqual(ids)
    expect(vi.getTimerCount()).toBe(0)
    expect(server.pushes.map((r) => r.token)).toEqual(['t', 't'])
  })
})
