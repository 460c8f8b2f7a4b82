// What the Learn and Team screens compute themselves: the period they ask for, a goal reached as the feed tells it
// in both languages, and where a deal's story is read from (the timeline, or a teammate's win story).
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { FeedItem, Pipeline, Stage } from '../src/api/client'
import type { Session } from '../src/auth'
import { orgTimeZone, periodQuery } from '../src/components/insight'
import { stageRows } from '../src/screens/learn'
import { fetchStory } from '../src/screens/story'
import { json, online } from './fake-server'

afterEach(() => {
  vi.unstubAllEnvs()
  vi.unstubAllGlobals()
  vi.resetModules()
})

describe('the period picked', () => {
  it("is the last N days, today included, on the organisation's calendar", () => {
    const now = new Date('2026-03-10T23:30:00Z') // 10 March 2026, late evening in UTC
    expect(periodQuery(30, 'UTC', now)).toEqual({ from: '2026-02-09', to: '2026-03-10' })
    expect(periodQuery(90, 'UTC', now)).toEqual({ from: '2025-12-11', to: '2026-03-10' })
    expect(periodQuery(365, 'UTC', now)).toEqual({ from: '2025-03-11', to: '2026-03-10' })
    // Already 11 March in Madrid.
    expect(periodQuery(30, 'Europe/Madrid', now)).toEqual({ from: '2026-02-10', to: '2026-03-11' })
  })

  it('asks for the days the server means, whatever time zone the phone is in', () => {
    // A phone in Kiritimati (UTC+14) at 01:00 on 10 March: it is still 9 March in Bogotá (UTC−5), where the
    // organisation is, so "today" is the 9th.
    vi.stubEnv('TZ', 'Pacific/Kiritimati')
    const now = new Date('2026-03-10T01:00:00+14:00')
    expect(now.getDate()).toBe(10) // the phone's own calendar
    expect(periodQuery(30, 'America/Bogota', now)).toEqual({ from: '2026-02-08', to: '2026-03-09' })
    expect(periodQuery(90, 'America/Bogota', now)).toEqual({ from: '2025-12-10', to: '2026-03-09' })
    // Across a change of the clocks (Madrid moves to summer time on 29 March 2026): whole days still.
    const spring = new Date('2026-04-02T10:00:00Z')
    expect(periodQuery(30, 'Europe/Madrid', spring)).toEqual({ from: '2026-03-04', to: '2026-04-02' })
  })

  it('is read in UTC when the organisation has no time zone, or one the device does not know', () => {
    const now = new Date('2026-03-10T01:00:00+14:00') // 9 March, 11:00 UTC
    expect(orgTimeZone(null)).toBe('UTC')
    expect(orgTimeZone({ organization: { settings: {} } } as unknown as Session)).toBe('UTC')
    expect(orgTimeZone({ organization: { settings: { time_zone: 'America/Bogota' } } } as unknown as Session)).toBe(
      'America/Bogota',
    )
    expect(periodQuery(30, 'Mars/Olympus_Mons', now)).toEqual({ from: '2026-02-08', to: '2026-03-09' })
  })
})

describe('time in each stage, top quartile against everyone else', () => {
  const time = (stage_id: string, name: string, median_days: number | null, pipeline_id = 'p1') => ({
    stage_id,
    name,
    pipeline_id,
    median_days,
  })
  const stage = (id: string, position: number, pipeline_id = 'p1') => ({ id, position, pipeline_id }) as Stage
  const pipeline = (id: string, name: string) => ({ id, name }) as Pipeline

  it("matches the stages by id, in the pipeline's order, a dash where a group did not pass", () => {
    const top = [time('lead', 'Lead', 1.5), time('proposal', 'Proposal', 4)]
    const rest = [time('lead', 'Lead', 3), time('qualified', 'Qualified', 2.25)]
    const stages = [stage('lead', 0), stage('qualified', 1), stage('proposal', 2)]
    expect(stageRows(top, rest, stages, [pipeline('p1', 'Sales')])).toEqual([
      { stage_id: 'lead', name: 'Lead', top: 1.5, rest: 3 },
      { stage_id: 'qualified', name: 'Qualified', top: null, rest: 2.25 },
      { stage_id: 'proposal', name: 'Proposal', top: 4, rest: null },
    ])
  })

  it("names the pipeline when the stages are of several, and keeps the server's order for a stage not on the device", () => {
    const top = [time('a', 'Lead', 1), time('b', 'Lead', 2, 'p2')]
    const rest = [time('c', 'Demo', 5)]
    const rows = stageRows(top, rest, [stage('a', 0)], [pipeline('p1', 'Sales'), pipeline('p2', 'Renewals')])
    expect(rows.map((r) => r.name)).toEqual(['Sales · Lead', 'Sales · Demo', 'Renewals · Lead'])
  })
})

const AT = '2026-03-10T09:00:00Z'

function item(fields: Partial<FeedItem>): FeedItem {
  return {
    id: crypto.randomUUID(),
    kind: 'activity',
    at: AT,
    actor_id: 'marta',
    user_id: null,
    data: {},
    activity: null,
    company: null,
    contact: null,
    deal: null,
    ...fields,
  }
}

const reached = (data: Record<string, unknown>) => item({ kind: 'goal_reached', user_id: 'marta', data })

describe('a goal reached, in the feed', () => {
  async function inLanguage(languages: string[]) {
    vi.stubGlobal('navigator', { languages })
    vi.stubGlobal('localStorage', undefined)
    vi.resetModules()
    return import('../src/screens/feed')
  }

  it('says which goal, how far and what it gives, in English', async () => {
    const { detail, what } = await inLanguage(['en-GB'])
    const goal = reached({ name: 'Call the base', metric: 'calls', target: 20, value: 21, reward: 'Coffee on us' })
    expect(what(goal, new Map(), 'me')).toBe('reached the goal “Call the base”')
    expect(detail(goal, 'EUR')).toBe('21 of 20 calls · Reward: Coffee on us')
    const money = reached({ name: 'Q4', metric: 'amount_won', target: 1_000_000, value: 1_250_000, reward: null })
    expect(detail(money, 'EUR')).toBe('€12,500.00 of €10,000.00 won')
  })

  it('and in Spanish', async () => {
    const { detail, what } = await inLanguage(['es-ES'])
    const goal = reached({ name: 'Cierra 1', metric: 'deals_won', target: 1, value: 1, reward: 'Comida' })
    expect(what(goal, new Map(), 'me')).toBe('alcanzó el objetivo «Cierra 1»')
    expect(detail(goal, 'EUR')).toBe('1 de 1 negocio ganado · Premio: Comida')
    const money = reached({ name: 'T4', metric: 'amount_won', target: 1_000_000, value: 1_250_000 })
    expect(detail(money, 'EUR')).toMatch(/^12\.500,00\s€ de 10\.000,00\s€ ganados$/)
  })
})

describe("a deal's story", () => {
  const win = {
    deal_id: 'd1',
    title: 'Workshop tools',
    owner: { user_id: 'marta', name: 'Marta Gil', team_id: null },
    amount_minor: 480_000,
    currency: 'EUR',
    created_at: AT,
    won_at: AT,
    items: [item({ kind: 'deal_created' }), item({ kind: 'deal_won' })],
  }

  it("opened from Learn is the team's win story, with what it tells about the deal", async () => {
    const server = online()
    server.intercept = (seen) => (seen.path === '/api/v1/insights/wins/d1' ? json(win) : undefined)
    const story = await fetchStory('d1', 'win')
    expect(story.items.map((i) => i.kind)).toEqual(['deal_created', 'deal_won'])
    expect(story.win).toMatchObject({ title: 'Workshop tools', owner: { name: 'Marta Gil' }, amount_minor: 480_000 })
    expect(server.requests.map((r) => r.path)).toEqual(['/api/v1/insights/wins/d1'])
  })

  it('is read from the timeline when the user may, oldest first', async () => {
    const server = online()
    const newest = [item({ kind: 'deal_won' }), item({ kind: 'deal_created' })]
    server.intercept = (seen) =>
      seen.path === '/api/v1/deals/d1/timeline' ? json({ items: newest, next_cursor: null }) : undefined
    const story = await fetchStory('d1', 'timeline')
    expect(story.items.map((i) => i.kind)).toEqual(['deal_created', 'deal_won'])
    expect(story.win).toBeUndefined()
  })

  it("falls back on the win story when the timeline is not the user's (a teammate's deal)", async () => {
    const server = online()
    server.intercept = (seen) => (seen.path === '/api/v1/insights/wins/d1' ? json(win) : undefined)
    const story = await fetchStory('d1', 'timeline')
    expect(story.win?.title).toBe('Workshop tools')
    expect(server.requests.map((r) => r.path)).toEqual(['/api/v1/deals/d1/timeline', '/api/v1/insights/wins/d1'])
  })

  it('says the timeline was not found when neither is there', async () => {
    online()
    await expect(fetchStory('d1', 'timeline')).rejects.toThrow('Not found')
  })
})
