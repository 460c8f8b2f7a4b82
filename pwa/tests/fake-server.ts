// An in-memory stand-in for the API at the network boundary (globalThis.fetch), after api/sync/push.py and
// pull.py: a push takes each mutation once per client (an id at or below the client's last taken one is a
// duplicate), answers `last_mutation_id`, and a pull serves queued pages. Every request is recorded.
import { vi } from 'vitest'
import type { Company, Deal, MutationResult, PullPage } from '../src/api/client'
import { useTokens } from '../src/api/client'
import { FieldbookDB } from '../src/db/db'

export interface Seen {
  method: string
  path: string
  query: URLSearchParams
  token: string | null
  body: any
}

export interface SentMutation {
  id: number
  name: string
  args: Record<string, unknown> & { id: string }
  base_version?: number
}

/** What the server does with a request before its usual handling: answer it, or fail the transport. */
export type Intercept = (seen: Seen) => Response | 'drop' | 'lose-response' | undefined

const ORIGIN = 'http://localhost'

export const json = (body: unknown, status = 200): Response =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } })

export class FakeServer {
  requests: Seen[] = []
  /** The last mutation taken per client (the server's sync_client row). */
  taken = new Map<string, number>()
  /** Mutation ids that took effect, in the order they did: each must appear once. */
  effects: number[] = []
  /** How a new mutation turns out (default: applied). */
  decide: (mutation: SentMutation) => MutationResult = (m) => ({ id: m.id, status: 'applied' })
  /** Pull pages, served in order; then an empty last page. */
  pages: PullPage[] = []
  /** Records the REST reads answer (GET /api/v1/{companies,contacts,deals,activities}/{id}); others are 404. */
  records = new Map<string, Record<string, unknown>>()
  /** Bearer tokens accepted; any other gets a 401. */
  tokens = new Set(['t'])
  /** Refresh tokens that are still good, and the pair each one is swapped for (single use, as the API's). */
  refreshes = new Map<string, { access_token: string; refresh_token: string }>()
  /** Who may sign in (by e-mail), and who each access token they got belongs to (`GET /me`). */
  accounts = new Map<string, { password: string; user: { id: string; name: string; email: string } }>()
  private owners = new Map<string, { id: string; name: string; email: string }>()
  /** No network at all: every request rejects as fetch does offline. */
  offline = false
  intercept?: Intercept

  get pushes(): Seen[] {
    return this.requests.filter((r) => r.path === '/api/v1/sync/push')
  }

  get pulls(): Seen[] {
    return this.requests.filter((r) => r.path === '/api/v1/sync/pull')
  }

  /** The mutation ids of each push request, in order. */
  get pushedIds(): number[][] {
    return this.pushes.map((r) => (r.body.mutations as SentMutation[]).map((m) => m.id))
  }

  fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    // A relative URL resolves against the page, as in the browser (auth.ts fetches '/api/v1/auth/refresh').
    const request = input instanceof Request ? input : new Request(new URL(String(input), ORIGIN), init)
    const url = new URL(request.url)
    const text = await request.text()
    const auth = request.headers.get('authorization')
    const seen: Seen = {
      method: request.method,
      path: url.pathname,
      query: url.searchParams,
      token: auth?.startsWith('Bearer ') ? auth.slice(7) : null,
      body: text ? JSON.parse(text) : null,
    }
    this.requests.push(seen)
    if (this.offline) throw new TypeError('fetch failed')
    const intercepted = this.intercept?.(seen)
    if (intercepted === 'drop') throw new TypeError('fetch failed')
    if (intercepted instanceof Response) return intercepted
    const open = ['/api/v1/auth/refresh', '/api/v1/auth/login', '/api/v1/auth/logout'].includes(seen.path)
    if (!open && (!seen.token || !this.tokens.has(seen.token))) return json({ title: 'Unauthorized' }, 401)
    const response = this.handle(seen)
    // The server did the work and committed; the answer never reached the device.
    if (intercepted === 'lose-response') throw new TypeError('fetch failed')
    return response
  }

  private handle(seen: Seen): Response {
    if (seen.method === 'POST' && seen.path === '/api/v1/auth/refresh') return this.refresh(seen.body.refresh_token)
    if (seen.method === 'POST' && seen.path === '/api/v1/auth/login') return this.login(seen.body)
    if (seen.method === 'POST' && seen.path === '/api/v1/auth/logout') return new Response(null, { status: 204 })
    if (seen.method === 'GET' && seen.path === '/api/v1/me') {
      return json({ kind: 'user', user: this.owners.get(seen.token ?? ''), organization: SESSION.organization })
    }
    if (seen.method === 'POST' && seen.path === '/api/v1/sync/push') return json(this.push(seen.body))
    if (seen.method === 'GET' && seen.path === '/api/v1/sync/pull') return json(this.pages.shift() ?? page())
    const rest = /^\/api\/v1\/(companies|contacts|deals|activities)\/([^/]+)$/.exec(seen.path)
    if (seen.method === 'GET' && rest) {
      const record = this.records.get(rest[2])
      return record ? json(record) : json({ title: 'Not found' }, 404)
    }
    return json({ title: 'Not found' }, 404)
  }

  private login(body: { email: string; password: string }): Response {
    const account = this.accounts.get(body.email)
    if (!account || account.password !== body.password) return json({ title: 'Unauthorized' }, 401)
    const access_token = `access-${this.tokens.size}`
    this.tokens.add(access_token)
    this.owners.set(access_token, account.user)
    return json({ access_token, refresh_token: `refresh-${access_token}`, token_type: 'bearer', expires_in: 900 })
  }

  private refresh(token: string): Response {
    const pair = this.refreshes.get(token)
    if (!pair) return json({ title: 'Unauthorized' }, 401)
    this.refreshes.delete(token)
    this.tokens.add(pair.access_token)
    return json({ ...pair, token_type: 'bearer', expires_in: 900 })
  }

  private push(body: { client_id: string; mutations: SentMutation[] }) {
    let taken = this.taken.get(body.client_id) ?? 0
    const results: MutationResult[] = []
    for (const mutation of body.mutations) {
      if (mutation.id <= taken) {
        results.push({ id: mutation.id, status: 'duplicate' })
        continue
      }
      const result = this.decide(mutation)
      if (result.status !== 'rejected') this.effects.push(mutation.id)
      results.push(result)
      taken = mutation.id
    }
    this.taken.set(body.client_id, taken)
    return { last_mutation_id: taken, results }
  }
}

type PageParts = Partial<Omit<PullPage, 'put' | 'remove'>> & {
  put?: Record<string, unknown[]>
  remove?: Record<string, string[]>
}

/** A pull page; by default the last one, putting and removing nothing. */
export function page(parts: PageParts = {}): PullPage {
  return {
    cursor: 'c-end',
    has_more: false,
    reset_required: false,
    ...parts,
    put: (parts.put ?? {}) as PullPage['put'],
    remove: (parts.remove ?? {}) as PullPage['remove'],
  }
}

export const ME = 'me-id'
export const CLIENT_ID = '0190c2a4-0000-7000-8000-000000000001'
export const SESSION = {
  access_token: 't',
  refresh_token: 'r',
  user: { id: ME, name: 'Me', email: 'me@example.com' },
  organization: { id: 'org-id', name: 'Org' },
}

/** A fresh, signed-in device database of its own. */
export async function device(): Promise<FieldbookDB> {
  const store = new FieldbookDB(`test-${crypto.randomUUID()}`)
  await store.setMeta('session', SESSION)
  await store.setMeta('client_id', CLIENT_ID)
  return store
}

/** Puts the fake server on the network and the default tokens ('t', never renewable) in the API client. */
export function online(): FakeServer {
  const server = new FakeServer()
  vi.stubGlobal('fetch', server.fetch)
  useTokens({ access: async () => 't', renew: async () => null })
  return server
}

const AT = '2025-01-01T00:00:00.000Z'

export function company(id: string, fields: Partial<Company> = {}): Company {
  return {
    id,
    name: 'Acme',
    address: null,
    city: null,
    country: null,
    domain: null,
    industry: null,
    phone: null,
    segment: null,
    size: null,
    source: null,
    tags: [],
    custom: {},
    owner_id: ME,
    version: 1,
    created_at: AT,
    updated_at: AT,
    deleted_at: null,
    ...fields,
  }
}

export function deal(id: string, fields: Partial<Deal> = {}): Deal {
  return {
    id,
    title: 'Big deal',
    amount_minor: 100_00,
    currency: 'EUR',
    company_id: null,
    contact_id: null,
    custom: {},
    expected_close_on: null,
    last_activity_at: null,
    lost_at: null,
    lost_note: null,
    lost_reason_id: null,
    owner_id: ME,
    pipeline_id: 'pipeline-1',
    previous_deal_id: null,
    rots_at: null,
    rotten: false,
    stage_entered_at: AT,
    stage_id: 'stage-1',
    status: 'open',
    version: 3,
    won_at: null,
    created_at: AT,
    updated_at: AT,
    deleted_at: null,
    ...fields,
  }
}
