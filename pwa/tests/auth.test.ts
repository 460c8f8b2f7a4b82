// Token renewal (src/auth.ts) through authFetch: the session lives in the app's own database, `db`.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { SignedOut } from '../src/api/client'
import { UnsyncedChanges, signIn } from '../src/auth'
import { db } from '../src/db/db'
import { mutate, newId } from '../src/db/local'
import { Engine, push } from '../src/sync/engine'
import { CLIENT_ID, FakeServer, SESSION, json } from './fake-server'

let server: FakeServer

beforeEach(async () => {
  await db.transaction('rw', db.tables, () => Promise.all(db.tables.map((table) => table.clear())))
  await db.setMeta('session', { ...SESSION, access_token: 'old', refresh_token: 'r1' })
  await db.setMeta('client_id', CLIENT_ID)
  server = new FakeServer()
  server.tokens = new Set(['new'])
  server.refreshes.set('r1', { access_token: 'new', refresh_token: 'r2' })
  vi.stubGlobal('fetch', server.fetch)
})

afterEach(() => {
  vi.useRealTimers()
  vi.unstubAllGlobals()
})

const refreshes = () => server.requests.filter((r) => r.path === '/api/v1/auth/refresh')

describe('renewal on a 401', () => {
  it('swaps the refresh token once, keeps the new pair and retries with the new access token', async () => {
    const mutationId = await mutate('company.create', { id: newId(), name: 'Acme' }, undefined, db)

    await push(db)

    expect(refreshes().map((r) => r.body)).toEqual([{ refresh_token: 'r1' }])
    expect(server.pushes.map((r) => r.token)).toEqual(['old', 'new'])
    expect(server.effects).toEqual([mutationId])
    expect(await db.getMeta('session')).toMatchObject({ access_token: 'new', refresh_token: 'r2', user: SESSION.user })

    // The next call starts with the new token.
    await push(db)
    await mutate('company.create', { id: newId(), name: 'Beta' }, undefined, db)
    await push(db)
    expect(server.pushes.map((r) => r.token)).toEqual(['old', 'new', 'new'])
  })

  it('uses the token another tab already renewed instead of spending the refresh token again', async () => {
    await mutate('company.create', { id: newId(), name: 'Acme' }, undefined, db)
    // The push goes out with 'old'; while it is answered 401, another tab renews and stores 'new'.
    server.intercept = (seen) => {
      if (seen.path !== '/api/v1/sync/push' || seen.token !== 'old') return undefined
      void db.setMeta('session', { ...SESSION, access_token: 'new', refresh_token: 'r2' })
      return json({ title: 'Unauthorized' }, 401)
    }

    await push(db)

    expect(refreshes()).toEqual([])
    expect(server.pushes.map((r) => r.token)).toEqual(['old', 'new'])
  })

  it('ends the session when the refresh is refused: signed out, outbox kept, no retry', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    server.refreshes.clear()
    await mutate('company.create', { id: newId(), name: 'Acme' }, undefined, db)

    await expect(push(db)).rejects.toBeInstanceOf(SignedOut)

    expect(await db.getMeta('signed_out')).toBe(true)
    expect(await db.getMeta('session')).toMatchObject({ access_token: '', refresh_token: '', user: SESSION.user })
    expect(await db.outbox.count()).toBe(1)

    const engine = new Engine(db)
    await engine.sync()
    expect(engine.status.state).toBe('signed-out')
    expect(vi.getTimerCount()).toBe(0)
    expect(server.pushes).toHaveLength(1)
  })

  it('keeps the session when the refresh endpoint fails on the server side (503)', async () => {
    server.intercept = (seen) =>
      seen.path === '/api/v1/auth/refresh' ? json({ title: 'Unavailable' }, 503) : undefined
    await mutate('company.create', { id: newId(), name: 'Acme' }, undefined, db)

    await expect(push(db)).rejects.toThrow()

    expect(await db.getMeta('signed_out')).toBeUndefined()
    expect(await db.getMeta('session')).toMatchObject({ refresh_token: 'r1' })
  })

  it('reports a transport failure during the refresh as offline, not as signed out', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    server.intercept = (seen) => (seen.path === '/api/v1/auth/refresh' ? 'drop' : undefined)
    await mutate('company.create', { id: newId(), name: 'Acme' }, undefined, db)

    const engine = new Engine(db)
    await engine.sync()

    expect(await db.getMeta('session')).toMatchObject({ refresh_token: 'r1' })
    expect(engine.status.state).toBe('offline')
    expect(vi.getTimerCount()).toBe(1)
  })
})

describe("signing in on a device that holds someone else's work", () => {
  const other = { id: 'other-id', name: 'Luis', email: 'luis@example.com' }
  beforeEach(() => {
    server.accounts.set(other.email, { password: 'pw', user: other })
    server.accounts.set(SESSION.user.email, { password: 'pw', user: SESSION.user })
  })

  it('refuses while the previous user has unsynced changes, and keeps them and their session', async () => {
    const id = newId()
    await mutate('company.create', { id, name: 'Acme' }, undefined, db)

    const refused = signIn(other.email, 'pw')

    await expect(refused).rejects.toBeInstanceOf(UnsyncedChanges)
    await expect(refused).rejects.toMatchObject({ count: 1, owner: 'Me' })
    expect(await db.outbox.count()).toBe(1)
    expect(await db.company.get(id)).toBeDefined()
    expect(await db.getMeta('session')).toMatchObject({ user: SESSION.user })
    expect(server.requests.filter((r) => r.path === '/api/v1/auth/logout')).toHaveLength(1) // the new session ends
  })

  it('starts from an empty device with a new identity when told to discard them', async () => {
    await mutate('company.create', { id: newId(), name: 'Acme' }, undefined, db)

    await signIn(other.email, 'pw', true)

    expect(await db.outbox.count()).toBe(0)
    expect(await db.company.count()).toBe(0)
    expect(await db.getMeta('session')).toMatchObject({ user: other })
    expect(await db.getMeta('client_id')).not.toBe(CLIENT_ID)
  })

  it('keeps everything when the same user signs in again after their session ended', async () => {
    const mutationId = await mutate('company.create', { id: newId(), name: 'Acme' }, undefined, db)

    await signIn(SESSION.user.email, 'pw')

    expect((await db.outbox.toArray()).map((row) => row.id)).toEqual([mutationId])
    expect(await db.getMeta('client_id')).toBe(CLIENT_ID)
  })
})
