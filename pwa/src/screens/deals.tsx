// Deals: the pipeline as a board, from the device (works offline). On a phone one stage fills the screen and the
// board is swiped; the stage buttons above it jump to a stage without swiping. From 900 px all stages show at once.
import { useRef, useState } from 'preact/hooks'
import type { Deal } from '../api/client'
import { db } from '../db/db'
import { clientOf, initials, isRotten, openStages, userNames } from '../db/queries'
import { useLive, useSession } from '../hooks'
import { defineMessages, fmt, plural, type Params } from '../i18n'
import { ExportMenu } from '../components/export'

const m = defineMessages({
  en: {
    title: 'Deals',
    pipeline: 'Pipeline',
    show: 'Show',
    mine: 'Mine',
    all: 'All I can see',
    stages: 'Stages',
    more: (p: Params) => plural(Number(p.n), { one: '+ {n} more currency', other: '+ {n} more currencies' }),
    rotten: 'Rotten',
    owner: 'Owner: {name}',
    none: 'No deals in this stage.',
    noPipeline: 'Your pipelines appear here after the first sync.',
    exportScope: 'The open deals of {pipeline} shown here.',
    exportScopeMine: 'Your open deals of {pipeline}.',
  },
  es: {
    title: 'Negocios',
    pipeline: 'Embudo',
    show: 'Mostrar',
    mine: 'Míos',
    all: 'Todos los que veo',
    stages: 'Etapas',
    more: (p: Params) => plural(Number(p.n), { one: '+ {n} moneda más', other: '+ {n} monedas más' }),
    rotten: 'Estancado',
    owner: 'Responsable: {name}',
    none: 'No hay negocios en esta etapa.',
    noPipeline: 'Tus embudos aparecerán aquí tras la primera sincronización.',
    exportScope: 'Los negocios abiertos de {pipeline} que se ven aquí.',
    exportScopeMine: 'Tus negocios abiertos de {pipeline}.',
  },
})

interface Card {
  deal: Deal
  client?: string
  owner: string
}

/** Totals per currency, the main one first: the organisation's currency when the stage has it, else the most used. */
function totals(cards: Card[], main: unknown): [string, number][] {
  const sums = new Map<string, { sum: number; n: number }>()
  for (const { deal } of cards) {
    const total = sums.get(deal.currency) ?? { sum: 0, n: 0 }
    sums.set(deal.currency, { sum: total.sum + deal.amount_minor, n: total.n + 1 })
  }
  return [...sums]
    .sort(([a, x], [b, y]) => Number(b === main) - Number(a === main) || y.n - x.n)
    .map(([currency, { sum }]) => [currency, sum])
}

async function board(pipelineId: string, owner: string | null) {
  const pipelines = (await db.pipeline.toArray()).sort((a, b) => a.name.localeCompare(b.name))
  const pipeline = pipelines.find((p) => p.id === pipelineId) ?? pipelines.find((p) => p.is_default) ?? pipelines[0]
  if (!pipeline) return { pipelines, pipeline, columns: [] }
  const stages = await openStages(pipeline.id)
  const [deals, names] = await Promise.all([
    db.deal
      .where('stage_id')
      .anyOf(stages.map((s) => s.id))
      .toArray(),
    userNames(),
  ])
  const cards: Card[] = await Promise.all(
    deals
      .filter((deal) => deal.status === 'open' && !deal.deleted_at && (!owner || deal.owner_id === owner))
      .sort((a, b) => b.amount_minor - a.amount_minor)
      .map(async (deal) => ({ deal, client: (await clientOf(deal))?.name, owner: names.get(deal.owner_id) ?? '' })),
  )
  return {
    pipelines,
    pipeline,
    columns: stages.map((stage) => ({ stage, cards: cards.filter((c) => c.deal.stage_id === stage.id) })),
  }
}

function DealCard({ card }: { card: Card }) {
  const { deal, client, owner } = card
  return (
    <li>
      <a class="card deal-card" href={`/deals/${deal.id}`} data-testid="deal-card">
        <span class="title">{deal.title}</span>
        {client && <span class="sub">{client}</span>}
        <span class="deal-meta">
          <span>{fmt.money(deal.amount_minor, deal.currency)}</span>
          {isRotten(deal) && <span class="pill warn">{m('rotten')}</span>}
          {owner && (
            <span class="avatar">
              <span aria-hidden="true">{initials(owner)}</span>
              <span class="visually-hidden">{m('owner', { name: owner })}</span>
            </span>
          )}
        </span>
      </a>
    </li>
  )
}

export function Deals() {
  const session = useSession()
  const me = session?.user.id ?? ''
  const [pipelineId, setPipelineId] = useState('')
  const [mine, setMine] = useState(false)
  const [shown, setShown] = useState(0)
  const boardRef = useRef<HTMLDivElement>(null)
  const data = useLive(() => board(pipelineId, mine ? me : null), [pipelineId, mine, me])
  if (!data)
    return (
      <div class="screen">
        <h1>{m('title')}</h1>
      </div>
    )
  const main = session?.organization.settings.currency

  // The stage in view on a phone, for the stage buttons: columns are one board wide.
  const onScroll = (event: Event) => {
    const el = event.currentTarget as HTMLElement
    setShown(Math.round(el.scrollLeft / Math.max(el.clientWidth, 1)))
  }
  const jump = (index: number) =>
    boardRef.current?.children[index]?.scrollIntoView({ behavior: 'smooth', block: 'nearest', inline: 'start' })

  return (
    <div class="screen">
      <h1>{m('title')}</h1>
      {data.pipelines.length > 1 && (
        <label class="field">
          <span>{m('pipeline')}</span>
          <select value={data.pipeline?.id} onChange={(e) => setPipelineId(e.currentTarget.value)}>
            {data.pipelines.map((p) => (
              <option value={p.id}>{p.name}</option>
            ))}
          </select>
        </label>
      )}
      <fieldset class="chips">
        <legend class="visually-hidden">{m('show')}</legend>
        <button type="button" class="chip" aria-pressed={mine} onClick={() => setMine(true)}>
          {m('mine')}
        </button>
        <button type="button" class="chip" aria-pressed={!mine} onClick={() => setMine(false)}>
          {m('all')}
        </button>
      </fieldset>
      {data.pipeline && (
        <ExportMenu
          entities={['deals']}
          filters={{ pipeline_id: data.pipeline.id, status: 'open', owner_id: mine ? 'me' : undefined }}
          scope={m(mine ? 'exportScopeMine' : 'exportScope', { pipeline: data.pipeline.name })}
        />
      )}
      {!data.pipeline && <p class="empty">{m('noPipeline')}</p>}
      {data.columns.length > 1 && (
        <nav class="stage-dots" aria-label={m('stages')}>
          {data.columns.map(({ stage }, index) => (
            <button
              type="button"
              aria-label={stage.name}
              aria-current={index === shown ? 'step' : undefined}
              onClick={() => jump(index)}
            >
              <span class="dot" aria-hidden="true" />
            </button>
          ))}
        </nav>
      )}
      <div class="board" ref={boardRef} onScroll={onScroll} data-testid="board">
        {data.columns.map(({ stage, cards }) => {
          const [first, ...others] = totals(cards, main)
          return (
            <section class="column" aria-labelledby={`stage-${stage.id}`} key={stage.id}>
              <h2 id={`stage-${stage.id}`}>
                {stage.name} <span class="muted">({fmt.number(cards.length)})</span>
              </h2>
              {first && (
                <p class="muted">
                  {fmt.money(first[1], first[0])}
                  {others.length > 0 && ` ${m('more', { n: others.length })}`}
                </p>
              )}
              {cards.length ? (
                <ul class="list">
                  {cards.map((card) => (
                    <DealCard key={card.deal.id} card={card} />
                  ))}
                </ul>
              ) : (
                <p class="empty">{m('none')}</p>
              )}
            </section>
          )
        })}
      </div>
    </div>
  )
}
