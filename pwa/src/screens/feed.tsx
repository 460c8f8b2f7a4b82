// Feed: what the team did, read from the server. Each list read online is kept in `db.page`, so the last one seen
// still shows offline (marked as saved, with its age).
import { useEffect, useRef, useState } from 'preact/hooks'
import { TransportError, api, problemText, type FeedItem, type Schemas } from '../api/client'
import type { Session } from '../auth'
import { db } from '../db/db'
import { clientHref, userNames } from '../db/queries'
import { useLive, useOnline, useSession } from '../hooks'
import { defineMessages, fmt, plural, type Params } from '../i18n'

const m = defineMessages({
  en: {
    title: 'Feed',
    whose: 'Whose news',
    team: 'Team',
    org: 'Everyone',
    me: 'Me',
    wins: 'Wins',
    refresh: 'Refresh',
    more: 'Load more',
    loading: 'Loading…',
    saved: 'Saved {when}, offline',
    failed: 'Could not load the feed: {error}',
    offline: 'You are offline. Open the feed once while online to keep a copy on this device.',
    empty: 'Nothing here yet.',
    someone: 'Someone',
    fieldbook: 'Fieldbook',
    webhook_disabled: 'turned off the webhook {url}',
    webhookGone: 'It answered 410 Gone.',
    webhookFailing: 'Every delivery had failed since {when}.',
    call: 'logged a call',
    meeting: 'had a meeting',
    email: 'sent an e-mail',
    note: 'added a note',
    task: 'completed a task',
    deal_created: 'created a deal',
    stage_moved: 'moved a deal to {stage}',
    deal_won: 'won a deal',
    deal_lost: 'lost a deal',
    deal_reopened: 'reopened a deal',
    shared: 'shared with {name}',
    sharedYou: 'shared with you',
    mentioned: 'mentioned {name}',
    mentionedYou: 'mentioned you',
    because: 'Reason: {reason}',
    goal_reached: 'reached the goal “{name}”',
    goalProgress: '{value} of {target}',
    reward: 'Reward: {reward}',
    deals_won: (p: Params) => plural(Number(p.n), { one: '{n} deal won', other: '{n} deals won' }),
    amount_won: '{money} won',
    activities: (p: Params) => plural(Number(p.n), { one: '{n} activity', other: '{n} activities' }),
    calls: (p: Params) => plural(Number(p.n), { one: '{n} call', other: '{n} calls' }),
    new_clients: (p: Params) => plural(Number(p.n), { one: '{n} new client', other: '{n} new clients' }),
    well_developed_clients: (p: Params) =>
      plural(Number(p.n), { one: '{n} well-developed client', other: '{n} well-developed clients' }),
  },
  es: {
    title: 'Actividad',
    whose: 'De quién',
    team: 'Equipo',
    org: 'Todos',
    me: 'Yo',
    wins: 'Ventas ganadas',
    refresh: 'Actualizar',
    more: 'Cargar más',
    loading: 'Cargando…',
    saved: 'Guardado {when}, sin conexión',
    failed: 'No se pudo cargar la actividad: {error}',
    offline: 'Sin conexión. Abre la actividad una vez con conexión para guardar una copia en este dispositivo.',
    empty: 'Aún no hay nada.',
    someone: 'Alguien',
    fieldbook: 'Fieldbook',
    webhook_disabled: 'desactivó el webhook {url}',
    webhookGone: 'Respondió 410 Gone.',
    webhookFailing: 'Todas las entregas fallaban desde el {when}.',
    call: 'registró una llamada',
    meeting: 'tuvo una reunión',
    email: 'envió un correo',
    note: 'añadió una nota',
    task: 'completó una tarea',
    deal_created: 'creó un negocio',
    stage_moved: 'movió un negocio a {stage}',
    deal_won: 'ganó un negocio',
    deal_lost: 'perdió un negocio',
    deal_reopened: 'reabrió un negocio',
    shared: 'compartió con {name}',
    sharedYou: 'compartió contigo',
    mentioned: 'mencionó a {name}',
    mentionedYou: 'te mencionó',
    because: 'Motivo: {reason}',
    goal_reached: 'alcanzó el objetivo «{name}»',
    goalProgress: '{value} de {target}',
    reward: 'Premio: {reward}',
    deals_won: (p: Params) => plural(Number(p.n), { one: '{n} negocio ganado', other: '{n} negocios ganados' }),
    amount_won: '{money} ganados',
    activities: (p: Params) => plural(Number(p.n), { one: '{n} actividad', other: '{n} actividades' }),
    calls: (p: Params) => plural(Number(p.n), { one: '{n} llamada', other: '{n} llamadas' }),
    new_clients: (p: Params) => plural(Number(p.n), { one: '{n} cliente nuevo', other: '{n} clientes nuevos' }),
    well_developed_clients: (p: Params) =>
      plural(Number(p.n), { one: '{n} cliente bien trabajado', other: '{n} clientes bien trabajados' }),
  },
})

export type GoalMetric = Schemas['GoalMetric']

/** The organisation's currency: what goals' amounts are in (the API's default when unset). */
export const orgCurrency = (session: Session | null | undefined): string => {
  const currency = session?.organization.settings.currency
  return typeof currency === 'string' ? currency : 'EUR'
}

/** A goal's number with its unit: "5 deals won", "€5,000.00 won" (amounts are minor units of `currency`). */
export function goalText(metric: GoalMetric, n: number, currency: string): string {
  return metric === 'amount_won' ? m('amount_won', { money: fmt.money(n, currency) }) : m(metric, { n })
}

/** A goal's bare number: the value next to its target ("3 of 5 deals won"). */
export const goalNumber = (metric: GoalMetric, n: number, currency: string): string =>
  metric === 'amount_won' ? fmt.money(n, currency) : fmt.number(n)

const METRICS: readonly GoalMetric[] = [
  'deals_won',
  'amount_won',
  'activities',
  'calls',
  'new_clients',
  'well_developed_clients',
]
const isMetric = (value: unknown): value is GoalMetric => METRICS.includes(value as GoalMetric)

/** "logged a call", "moved a deal to Proposal": what an item's actor did. */
export function what(item: FeedItem, names: Map<string, string>, me: string): string {
  switch (item.kind) {
    case 'activity':
      return m(item.activity?.kind ?? 'note')
    case 'stage_moved':
      return m('stage_moved', { stage: String(item.data.to_stage ?? '') })
    case 'goal_reached':
      return m('goal_reached', { name: String(item.data.name ?? '') })
    case 'webhook_disabled':
      return m('webhook_disabled', { url: String(item.data.url ?? '') })
    case 'shared':
    case 'mentioned':
      if (item.user_id === me) return m(item.kind === 'shared' ? 'sharedYou' : 'mentionedYou')
      return m(item.kind, { name: names.get(item.user_id ?? '') ?? m('someone') })
    default:
      return m(item.kind)
  }
}

/** More about it: the activity's subject, the amount when the deal was made or won, why it was lost, what a goal
 *  reached asked and gives. `orgCurrency`: the organisation's, which a goal's amounts are in. */
export function detail(item: FeedItem, orgCurrency: string): string {
  if (item.kind === 'goal_reached') return goalDetail(item.data, orgCurrency)
  if (item.kind === 'webhook_disabled') {
    const since = item.data.failing_since
    return typeof since === 'string' ? m('webhookFailing', { when: fmt.date(since) }) : m('webhookGone')
  }
  // The amount frozen in the event (what it was won for), else the deal's amount now.
  const amount = item.data.amount_minor ?? item.deal?.amount_minor
  const currency = item.data.currency ?? item.deal?.currency
  const money =
    (item.kind === 'deal_won' || item.kind === 'deal_created') &&
    typeof amount === 'number' &&
    typeof currency === 'string'
  return [
    item.activity?.subject,
    money && fmt.money(amount, currency),
    item.kind === 'deal_lost' && item.data.reason && m('because', { reason: String(item.data.reason) }),
  ]
    .filter(Boolean)
    .join(' · ')
}

function goalDetail(data: FeedItem['data'], currency: string): string {
  const { metric, value, target, reward } = data
  const progress =
    isMetric(metric) &&
    typeof value === 'number' &&
    typeof target === 'number' &&
    m('goalProgress', { value: goalNumber(metric, value, currency), target: goalText(metric, target, currency) })
  return [progress, typeof reward === 'string' && reward && m('reward', { reward })].filter(Boolean).join(' · ')
}

export const who = (item: FeedItem, names: Map<string, string>): string =>
  names.get(item.actor_id ?? '') ?? m(item.kind === 'webhook_disabled' ? 'fieldbook' : 'someone')

/** A win opens its story; a goal reached the goals (Learn); anything else the deal, else the client it is about. */
function href(item: FeedItem): string | null {
  if (item.kind === 'goal_reached') return '/learn#goals'
  if (item.deal) return item.kind === 'deal_won' ? `/deals/${item.deal.id}/story` : `/deals/${item.deal.id}`
  if (item.contact) return clientHref('contact', item.contact.id)
  if (item.company) return clientHref('company', item.company.id)
  return null
}

const SCOPES = ['team', 'org', 'me'] as const
type Scope = (typeof SCOPES)[number]

function Item({
  item,
  names,
  me,
  currency,
}: {
  item: FeedItem
  names: Map<string, string>
  me: string
  currency: string
}) {
  const link = href(item)
  const body = (
    <span class="grow">
      <span class="title">{`${who(item, names)} ${what(item, names, me)}`}</span>
      <span class="sub">
        {[item.deal?.title ?? item.contact?.name ?? item.company?.name, detail(item, currency)]
          .filter(Boolean)
          .join(' · ')}
      </span>
    </span>
  )
  const when = (
    <time datetime={item.at} class="muted">
      {fmt.relative(item.at)}
    </time>
  )
  return (
    <li data-testid="feed-item" data-kind={item.kind}>
      {link ? (
        <a class="item" href={link}>
          {body}
          {when}
        </a>
      ) : (
        <div class="item">
          {body}
          {when}
        </div>
      )}
    </li>
  )
}

export function Feed() {
  const online = useOnline()
  const session = useSession()
  const me = session?.user.id ?? ''
  const currency = orgCurrency(session)
  const names = useLive(userNames) ?? new Map<string, string>()
  const [scope, setScope] = useState<Scope>('team')
  const [wins, setWins] = useState(false)
  const key = `feed:${scope}${wins ? ':wins' : ''}`
  const saved = useLive(async () => (await db.page.get(key)) ?? null, [key])
  const [cursor, setCursor] = useState<string | null>(null)
  const [state, setState] = useState<'idle' | 'loading' | 'offline' | 'error'>('idle')
  const [error, setError] = useState('')
  // The list on screen: an answer for a list the user has since left is stored but not shown.
  const current = useRef(key)
  current.current = key

  async function load(after: string | null) {
    const asked = key
    setState('loading')
    try {
      const items: FeedItem[] = []
      let next = after
      // A page can be empty and still have a cursor (the server scans in windows): read on until there is news.
      do {
        const { data, error } = await api.GET('/api/v1/feed', {
          params: { query: { scope, only: wins ? 'wins' : null, cursor: next } },
        })
        if (!data) throw new Error(problemText(error))
        items.push(...data.items)
        next = data.next_cursor ?? null
      } while (!items.length && next)
      const kept = after ? ((await db.page.get(asked))?.items ?? []) : []
      await db.page.put({ key: asked, items: [...kept, ...items], at: new Date().toISOString() })
      if (current.current !== asked) return
      setCursor(next)
      setState('idle')
    } catch (e) {
      if (current.current !== asked) return
      setState(e instanceof TransportError ? 'offline' : 'error')
      setError(e instanceof Error ? e.message : String(e))
    }
  }

  useEffect(() => {
    setCursor(null)
    if (online) void load(null)
    else setState('offline')
  }, [key, online])

  const offline = !online || state === 'offline'
  const tabKeys = (event: KeyboardEvent) => {
    const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0
    if (!step) return
    const next = SCOPES[(SCOPES.indexOf(scope) + step + SCOPES.length) % SCOPES.length]
    setScope(next)
    document.getElementById(`feed-tab-${next}`)?.focus()
  }

  return (
    <div class="screen">
      <h1>{m('title')}</h1>
      <div class="feed-bar">
        <div class="segmented" role="tablist" aria-label={m('whose')} onKeyDown={tabKeys}>
          {SCOPES.map((s) => (
            <button
              type="button"
              role="tab"
              id={`feed-tab-${s}`}
              aria-selected={s === scope}
              aria-controls="feed-panel"
              tabIndex={s === scope ? 0 : -1}
              onClick={() => setScope(s)}
            >
              {m(s)}
            </button>
          ))}
        </div>
        <button type="button" class="chip" aria-pressed={wins} onClick={() => setWins(!wins)}>
          {m('wins')}
        </button>
        <button type="button" onClick={() => void load(null)} disabled={offline || state === 'loading'}>
          {m('refresh')}
        </button>
      </div>
      <div id="feed-panel" role="tabpanel" aria-labelledby={`feed-tab-${scope}`}>
        <p role="status" class="muted">
          {state === 'loading' ? m('loading') : offline && saved ? m('saved', { when: fmt.relative(saved.at) }) : ''}
        </p>
        {state === 'error' && !offline && <p class="danger-text">{m('failed', { error })}</p>}
        {offline && saved === null && <p class="empty">{m('offline')}</p>}
        {saved?.items.length === 0 && state !== 'loading' && <p class="empty">{m('empty')}</p>}
        {saved && saved.items.length > 0 && (
          <ul class="list card">
            {saved.items.map((item) => (
              <Item key={item.id} item={item} names={names} me={me} currency={currency} />
            ))}
          </ul>
        )}
        {cursor && !offline && (
          <div class="actions">
            <button type="button" onClick={() => void load(cursor)} disabled={state === 'loading'}>
              {m('more')}
            </button>
          </div>
        )}
      </div>
    </div>
  )
}
