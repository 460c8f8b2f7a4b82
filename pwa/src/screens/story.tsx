// A deal's story, from first touch to close: the server's timeline of the deal read whole, oldest first, for the
// team to learn how it was won. Kept in `db.page` so a story seen once opens offline.
import { useEffect, useState } from 'preact/hooks'
import { TransportError, api, problemText, type Deal, type FeedItem } from '../api/client'
import { db } from '../db/db'
import { userNames } from '../db/queries'
import { useLive, useOnline, useSession } from '../hooks'
import { defineMessages, fmt } from '../i18n'
import { detail, what, who } from './feed'

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

/** The whole timeline, oldest first (the server pages it newest first). */
async function fetchStory(id: string): Promise<FeedItem[]> {
  const items: FeedItem[] = []
  let cursor: string | null = null
  do {
    const { data, error } = await page(id, cursor)
    if (!data) throw new Error(problemText(error))
    items.push(...data.items)
    cursor = data.next_cursor ?? null
  } while (cursor)
  return items.reverse()
}

const page = (id: string, cursor: string | null) =>
  api.GET('/api/v1/deals/{deal_id}/timeline', { params: { path: { deal_id: id }, query: { limit: 200, cursor } } })

/** The header: the deal on the device when it is there, else what the timeline tells. */
function summary(items: FeedItem[], deal: Deal | null, names: Map<string, string>) {
  const ref = items.findLast((item) => item.deal)?.deal
  const status = deal?.status ?? ref?.status
  const closing = items.findLast((item) => item.kind === 'deal_won' || item.kind === 'deal_lost')
  const start = items.find((item) => item.kind === 'deal_created') ?? items[0]
  const created = deal?.created_at ?? start?.at
  const closed = status === 'open' ? null : (deal?.won_at ?? deal?.lost_at ?? closing?.at)
  const touches = new Map<string, number>()
  for (const item of items)
    if (item.activity) touches.set(item.activity.kind, (touches.get(item.activity.kind) ?? 0) + 1)
  return {
    status,
    title: deal?.title ?? ref?.title,
    amount: deal ? fmt.money(deal.amount_minor, deal.currency) : ref && fmt.money(ref.amount_minor, ref.currency),
    rep: deal ? names.get(deal.owner_id) : (closing ?? start) && who(closing ?? start, names),
    days: created ? Math.floor(((closed ? Date.parse(closed) : Date.now()) - Date.parse(created)) / DAY) : null,
    closed: Boolean(closed),
    touches,
  }
}

export function StoryContent({ id }: { id: string }) {
  const online = useOnline()
  const me = useSession()?.user.id ?? ''
  const key = `story:${id}`
  const saved = useLive(async () => (await db.page.get(key)) ?? null, [key])
  const local = useLive(async () => ({ deal: (await db.deal.get(id)) ?? null, names: await userNames() }), [id])
  const [state, setState] = useState<'idle' | 'loading' | 'offline' | 'error'>('idle')
  const [error, setError] = useState('')

  useEffect(() => {
    if (!online) return setState('offline')
    let shown = true
    setState('loading')
    fetchStory(id)
      .then(async (items) => {
        await db.page.put({ key, items, at: new Date().toISOString() })
        if (shown) setState('idle')
      })
      .catch((e: unknown) => {
        if (!shown) return
        setState(e instanceof TransportError ? 'offline' : 'error')
        setError(e instanceof Error ? e.message : String(e))
      })
    return () => {
      shown = false
    }
  }, [id, online])

  if (saved === undefined || !local) return <h1>{m('title')}</h1>
  const items = saved?.items ?? []
  const names = local.names
  const story = summary(items, local.deal, names)
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
                  {detail(item) && <p class="muted">{detail(item)}</p>}
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
