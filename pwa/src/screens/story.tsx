// A deal's story, from first touch to close: the server's timeline of the deal read whole, oldest first, for the
// team to learn how it was won. A teammate's win (opened from Learn) is usually not on this device nor visible to
// the user's timeline: it is read from the insights' win story instead, which brings the deal's title, owner and
// amount along. Kept in `db.page` so a story seen once opens offline.
import { api, problemText, type Deal, type FeedItem, type Schemas } from '../api/client'
import { db } from '../db/db'
import { userNames } from '../db/queries'
import { useKept, useLive, useOnline, useSession } from '../hooks'
import { defineMessages, fmt } from '../i18n'
import { detail, orgCurrency, what, who } from './feed'

const m = defineMessages({
  en: {
    title: 'Deal story',
    won: 'How this deal was won',
    lost: 'How this deal was lost',
    open: 'The story so far',
    rep: 'Rep: {name}',
    daysToClose: 'Days to close',
    daysOpen: 'Days open',
    call: 'Calls',
    meeting: 'Meetings',
    email: 'E-mails',
    note: 'Notes',
    steps: 'Every step',
    loading: 'Loading…',
    saved: 'Saved {when}, offline',
    offline: 'You are offline. Open this story once while online to keep it on this device.',
    failed: 'Could not load the story: {error}',
    empty: 'Nothing has happened on this deal yet.',
  },
  es: {
    title: 'Historia del negocio',
    won: 'Cómo se ganó este negocio',
    lost: 'Cómo se perdió este negocio',
    open: 'La historia hasta ahora',
    rep: 'Comercial: {name}',
    daysToClose: 'Días hasta el cierre',
    daysOpen: 'Días abierto',
    call: 'Llamadas',
    meeting: 'Reuniones',
    email: 'Correos',
    note: 'Notas',
    steps: 'Paso a paso',
    loading: 'Cargando…',
    saved: 'Guardado {when}, sin conexión',
    offline: 'Sin conexión. Abre esta historia una vez con conexión para guardarla en este dispositivo.',
    failed: 'No se pudo cargar la historia: {error}',
    empty: 'Aún no ha pasado nada en este negocio.',
  },
})

const TOUCHES = ['call', 'meeting', 'email', 'note'] as const
const DAY = 86_400_000

/** What a win story tells about its deal besides the timeline (kept as the cached page's `data`). */
type WinMeta = Omit<Schemas['WinStory'], 'items'>
interface Story {
  items: FeedItem[]
  win?: WinMeta
}

/** Where a story is read: the deal's timeline (the user's own or visible deals), or a teammate's win. */
export type Source = 'timeline' | 'win'

/** The deal is not there for this user (not visible, or not a win of their team). */
class Missing extends Error {}

/** The whole timeline, oldest first (the server pages it newest first). */
async function fetchTimeline(id: string): Promise<Story> {
  const items: FeedItem[] = []
  let cursor: string | null = null
  do {
    const { data, error, response } = await page(id, cursor)
    if (response.status === 404) throw new Missing(problemText(error))
    if (!data) throw new Error(problemText(error))
    items.push(...data.items)
    cursor = data.next_cursor ?? null
  } while (cursor)
  return { items: items.reverse() }
}

const page = (id: string, cursor: string | null) =>
  api.GET('/api/v1/deals/{deal_id}/timeline', { params: { path: { deal_id: id }, query: { limit: 200, cursor } } })

/** A won deal of someone on the user's leaderboard, its whole timeline oldest first. */
async function fetchWin(id: string): Promise<Story> {
  const { data, error } = await api.GET('/api/v1/insights/wins/{deal_id}', { params: { path: { deal_id: id } } })
  if (!data) throw new Error(problemText(error))
  const { items, ...win } = data
  return { items, win }
}

/** From Learn, the win story; otherwise the timeline, and the win story when the timeline is not the user's to
 *  read (a teammate's win that reached them through the feed, say). */
export async function fetchStory(id: string, source: Source): Promise<Story> {
  if (source === 'win') return fetchWin(id)
  try {
    return await fetchTimeline(id)
  } catch (error) {
    if (error instanceof Missing) return fetchWin(id).catch(() => Promise.reject(error))
    throw error
  }
}

/** The header: the deal on the device when it is there, else what the win story or the timeline tells. */
function summary(items: FeedItem[], deal: Deal | null, win: WinMeta | null, names: Map<string, string>) {
  const ref = items.findLast((item) => item.deal)?.deal
  const status = deal?.status ?? (win ? 'won' : ref?.status)
  const closing = items.findLast((item) => item.kind === 'deal_won' || item.kind === 'deal_lost')
  const start = items.find((item) => item.kind === 'deal_created') ?? items[0]
  const created = deal?.created_at ?? win?.created_at ?? start?.at
  const closed = status === 'open' ? null : (deal?.won_at ?? deal?.lost_at ?? win?.won_at ?? closing?.at)
  const touches = new Map<string, number>()
  for (const item of items)
    if (item.activity) touches.set(item.activity.kind, (touches.get(item.activity.kind) ?? 0) + 1)
  const money = deal ?? (win && { amount_minor: win.amount_minor, currency: win.currency }) ?? ref
  return {
    status,
    title: deal?.title ?? win?.title ?? ref?.title,
    amount: money && fmt.money(money.amount_minor, money.currency),
    rep: deal ? names.get(deal.owner_id) : (win?.owner.name ?? ((closing ?? start) && who(closing ?? start, names))),
    days: created ? Math.floor(((closed ? Date.parse(closed) : Date.now()) - Date.parse(created)) / DAY) : null,
    closed: Boolean(closed),
    touches,
  }
}

export function StoryContent({ id, source = 'timeline' }: { id: string; source?: Source }) {
  const online = useOnline()
  const session = useSession()
  const me = session?.user.id ?? ''
  const currency = orgCurrency(session)
  const key = `story:${id}`
  const saved = useLive(async () => (await db.page.get(key)) ?? null, [key])
  const local = useLive(async () => ({ deal: (await db.deal.get(id)) ?? null, names: await userNames() }), [id])
  const { state, error } = useKept(
    key,
    async () => {
      const { items, win } = await fetchStory(id, source)
      return { items, data: win }
    },
    online,
    [source],
  )

  if (saved === undefined || !local) return <h1>{m('title')}</h1>
  const items = saved?.items ?? []
  const win = (saved?.data as WinMeta | undefined) ?? null
  // A teammate may not be among the users on this device: the win story names the deal's owner.
  const names =
    win && !local.names.has(win.owner.user_id)
      ? new Map(local.names).set(win.owner.user_id, win.owner.name)
      : local.names
  const story = summary(items, local.deal, win, names)
  const offline = !online || state === 'offline'
  return (
    <>
      <h1>{story.status ? m(story.status) : m('title')}</h1>
      {story.title && <p class="story-title">{story.title}</p>}
      <p class="muted">{[story.amount, story.rep && m('rep', { name: story.rep })].filter(Boolean).join(' · ')}</p>
      <p role="status" class="muted">
        {state === 'loading' ? m('loading') : offline && saved ? m('saved', { when: fmt.relative(saved.at) }) : ''}
      </p>
      {state === 'error' && !offline && <p class="danger-text">{m('failed', { error })}</p>}
      {offline && !saved && <p class="empty">{m('offline')}</p>}
      {saved && (
        <div class="stats" data-testid="story-stats">
          {story.days !== null && (
            <div>
              <strong>{fmt.number(story.days)}</strong>
              <span>{story.closed ? m('daysToClose') : m('daysOpen')}</span>
            </div>
          )}
          {TOUCHES.map((kind) => (
            <div>
              <strong>{fmt.number(story.touches.get(kind) ?? 0)}</strong>
              <span>{m(kind)}</span>
            </div>
          ))}
        </div>
      )}
      {saved && (
        <section aria-labelledby="story-steps">
          <h2 id="story-steps">{m('steps')}</h2>
          {items.length ? (
            <ol class="timeline" data-testid="story-timeline">
              {items.map((item) => (
                <li key={item.id}>
                  <time datetime={item.at} class="muted">
                    {fmt.dateTime(item.at)}
                  </time>
                  <p>
                    <strong>{who(item, names)}</strong> {what(item, names, me)}
                  </p>
                  {detail(item, currency) && <p class="muted">{detail(item, currency)}</p>}
                </li>
              ))}
            </ol>
          ) : (
            state !== 'loading' && <p class="empty">{m('empty')}</p>
          )}
        </section>
      )}
    </>
  )
}

export function DealStory({ id }: { id: string }) {
  return (
    <div class="screen">
      <StoryContent id={id} />
    </div>
  )
}

/** A win opened from Learn: the team's won deal, read through the insights whether or not the user can see it. */
export function WinStory({ id }: { id: string }) {
  return (
    <div class="screen">
      <StoryContent id={id} source="win" />
    </div>
  )
}
