// The session, remembered on the device: tokens and who is signed in, in IndexedDB so the service worker's
// Background Sync can push with them too.
import { API, type Me, type TokenPair, TransportError, useTokens } from './api/client'
import { db, type FieldbookDB } from './db/db'
import { newId } from './db/local'

export interface Session {
  access_token: string
  refresh_token: string
  user: NonNullable<Me['user']>
  organization: Me['organization']
}

export const session = (store: FieldbookDB = db) => store.getMeta<Session>('session')

/** Refresh tokens are single use and a reused one ends the session, so every tab and the service worker take
 *  turns; whoever comes second finds the token already renewed and uses it. */
async function renew(rejected: string): Promise<string | null> {
  const run = async () => {
    const current = await session()
    if (!current) return null
    if (current.access_token !== rejected) return current.access_token
    let response: Response
    try {
      response = await fetch(`${API}/auth/refresh`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refresh_token: current.refresh_token }),
      })
    } catch (error) {
      throw new TransportError(String(error))
    }
    // Only the server saying no ends the session; its trouble (5xx, 429) is waited out like a lost connection.
    if (response.status >= 500 || response.status === 429) throw new TransportError(`refresh: ${response.status}`)
    if (!response.ok) {
      await db.meta.put({ key: 'session', value: { ...current, access_token: '', refresh_token: '' } })
      await db.setMeta('signed_out', true)
      return null
    }
    const pair = (await response.json()) as TokenPair
    await db.setMeta('session', { ...current, access_token: pair.access_token, refresh_token: pair.refresh_token })
    return pair.access_token
  }
  const locks = globalThis.navigator?.locks
  return locks ? locks.request('fieldbook-auth', run) : run()
}

useTokens({ access: async () => (await session())?.access_token || null, renew })

export class SignInError extends Error {
  constructor(readonly status: number) {
    super(`sign-in failed: ${status}`)
  }
}

/** The device holds changes another user made that have not reached the server yet. */
export class UnsyncedChanges extends Error {
  constructor(
    readonly count: number,
    readonly owner: string,
  ) {
    super(`${count} unsynced changes of ${owner}`)
  }
}

async function endSession(pair: Pick<TokenPair, 'access_token' | 'refresh_token'>): Promise<void> {
  await fetch(`${API}/auth/logout`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${pair.access_token}` },
    body: JSON.stringify({ refresh_token: pair.refresh_token }),
  }).catch(() => undefined)
}

/** Signs in. A different user than the one whose data is on the device starts from an empty device; when that
 *  would delete changes the previous user has not synced, only with `discard`. */
export async function signIn(email: string, password: string, discard = false): Promise<Session> {
  const response = await fetch(`${API}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  })
  if (!response.ok) throw new SignInError(response.status)
  const pair = (await response.json()) as TokenPair
  const meResponse = await fetch(`${API}/me`, { headers: { authorization: `Bearer ${pair.access_token}` } })
  if (!meResponse.ok) throw new SignInError(meResponse.status)
  const me = (await meResponse.json()) as Me
  if (!me.user) throw new SignInError(403)
  const previous = await session()
  if (previous && previous.user.id !== me.user.id) {
    const pending = await db.outbox.count()
    if (pending && !discard) {
      await endSession(pair)
      throw new UnsyncedChanges(pending, previous.user.name)
    }
    await forget()
  }
  const next: Session = {
    access_token: pair.access_token,
    refresh_token: pair.refresh_token,
    user: me.user,
    organization: me.organization,
  }
  await db.setMeta('session', next)
  await db.meta.delete('signed_out')
  if (!(await db.getMeta('client_id'))) await db.setMeta('client_id', newId())
  return next
}

/** Drops everything this device holds for the user, outbox included, and gives the app a new identity. It waits
 *  for a sync under way, which would otherwise write the user's records back after the clearing. */
async function forget(): Promise<void> {
  const clear = async () => {
    await db.transaction('rw', db.tables, async () => {
      await Promise.all(db.tables.map((table) => table.clear()))
      await db.setMeta('client_id', newId())
    })
  }
  const locks = globalThis.navigator?.locks
  await (locks ? locks.request('fieldbook-sync', clear) : clear())
}

/** Signs out on the server (best effort: offline it just forgets) and clears the device. */
export async function signOut(): Promise<void> {
  const current = await session()
  if (current?.refresh_token) await endSession(current)
  await forget()
}
