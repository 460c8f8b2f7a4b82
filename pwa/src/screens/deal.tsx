// One deal, from the device: move it along its stages, win or lose it, change its amount, log what happened.
// Every change is local first (the outbox sends it) and carries the version the device saw, so the server reports
// a colleague's change to the same stage or amount as a conflict instead of overwriting it.
import { useState } from 'preact/hooks'
import type { Activity, Deal } from '../api/client'
import { openSheet, type SheetKind } from '../components/call-sheet'
import { db } from '../db/db'
import { mutate } from '../db/local'
import { activitiesOf, clientHref, clientOf, isOverdue, isRotten, openStages, userNames } from '../db/queries'
import { useLive } from '../hooks'
import { defineMessages, fmt } from '../i18n'
import { StoryContent } from './story'

const m = defineMessages({
  en: {
    open: 'Open',
    won: 'Won',
    lost: 'Lost',
    rotten: 'Rotten',
    amount: 'Amount',
    close: 'Expected close',
    owner: 'Owner',
    stage: 'Stage',
    reasonWas: 'Lost because',
    saveAmount: 'Save amount',
    badAmount: 'Enter an amount, like {example}.',
    reason: 'Reason',
    pick: 'Choose a reason',
    note: 'Note (optional)',
    markLost: 'Mark as lost',
    cancel: 'Cancel',
    call: 'Log call',
    noteAction: 'Add note',
    task: 'Add task',
    activity: 'Activity',
    nothing: 'Nothing logged on this deal yet.',
    story: 'See the whole story',
    issue: 'A change to this deal needs your attention.',
    gone: 'This deal is no longer on this device (closed deals leave it). Here is its story.',
    due: 'Due {when}',
    overdue: 'Overdue',
    kind_call: 'Call',
    kind_meeting: 'Meeting',
    kind_email: 'E-mail',
    kind_note: 'Note',
    kind_task: 'Task',
  },
  es: {
    open: 'Abierto',
    won: 'Ganado',
    lost: 'Perdido',
    rotten: 'Estancado',
    amount: 'Importe',
    close: 'Cierre previsto',
    owner: 'Responsable',
    stage: 'Etapa',
    reasonWas: 'Perdido por',
    saveAmount: 'Guardar importe',
    badAmount: 'Escribe un importe, como {example}.',
    reason: 'Motivo',
    pick: 'Elige un motivo',
    note: 'Nota (opcional)',
    markLost: 'Marcar como perdido',
    cancel: 'Cancelar',
    call: 'Registrar llamada',
    noteAction: 'Añadir nota',
    task: 'Añadir tarea',
    activity: 'Actividad',
    nothing: 'Aún no hay nada registrado en este negocio.',
    story: 'Ver toda la historia',
    issue: 'Un cambio en este negocio requiere tu atención.',
    gone: 'Este negocio ya no está en este dispositivo (los cerrados salen de él). Esta es su historia.',
    due: 'Vence {when}',
    overdue: 'Vencida',
    kind_call: 'Llamada',
    kind_meeting: 'Reunión',
    kind_email: 'Correo',
    kind_note: 'Nota',
    kind_task: 'Tarea',
  },
})

async function dealView(id: string) {
  const deal = await db.deal.get(id)
  if (!deal) return null
  const [stages, reasons, client, names, activities, issues] = await Promise.all([
    openStages(deal.pipeline_id),
    db.lost_reason.toArray(),
    clientOf(deal),
    userNames(),
    activitiesOf('deal_id', id),
    db.issue.filter((issue) => issue.mutation.args.id === id).count(),
  ])
  return { deal, stages, reasons: reasons.sort((a, b) => a.position - b.position), client, names, activities, issues }
}

/** A date-only value ("2025-03-01") as that day wherever the user is (midnight UTC is the day before in America). */
const day = (date: string) => fmt.date(`${date}T12:00`)

function AmountForm({ deal }: { deal: Deal }) {
  const [text, setText] = useState('')
  const [bad, setBad] = useState(false)
  async function save(event: Event) {
    event.preventDefault()
    const minor = fmt.parseMoney(text, deal.currency)
    const invalid = minor === null || minor < 0
    setBad(invalid)
    if (invalid || minor === deal.amount_minor) return
    await mutate('deal.update', { id: deal.id, amount_minor: minor }, deal.version)
    setText('')
  }
  return (
    <form class="inline-form" onSubmit={save}>
      <label class="field grow">
        <span>{m('amount')}</span>
        <input
          inputMode="decimal"
          autocomplete="off"
          value={text}
          placeholder={fmt.money(deal.amount_minor, deal.currency)}
          aria-invalid={bad}
          aria-describedby={bad ? 'amount-error' : undefined}
          onInput={(e) => setText(e.currentTarget.value)}
        />
      </label>
      <button type="submit" disabled={!text.trim()}>
        {m('saveAmount')}
      </button>
      {bad && (
        <p id="amount-error" class="danger-text">
          {m('badAmount', { example: fmt.money(123_450, deal.currency) })}
        </p>
      )}
    </form>
  )
}

function LostForm({
  deal,
  reasons,
  onDone,
}: {
  deal: Deal
  reasons: { id: string; name: string }[]
  onDone: () => void
}) {
  const [reason, setReason] = useState('')
  const [note, setNote] = useState('')
  async function lose(event: Event) {
    event.preventDefault()
    if (!reason) return
    await mutate('deal.lose', { id: deal.id, lost_reason_id: reason, note: note.trim() || null }, deal.version)
    onDone()
  }
  return (
    <form class="card" id="lost-form" onSubmit={lose}>
      <label class="field">
        <span>{m('reason')}</span>
        <select required value={reason} onChange={(e) => setReason(e.currentTarget.value)}>
          <option value="">{m('pick')}</option>
          {reasons.map((r) => (
            <option value={r.id}>{r.name}</option>
          ))}
        </select>
      </label>
      <label class="field">
        <span>{m('note')}</span>
        <textarea rows={2} value={note} onInput={(e) => setNote(e.currentTarget.value)} />
      </label>
      <div class="actions">
        <button type="button" onClick={onDone}>
          {m('cancel')}
        </button>
        <button type="submit" class="danger" disabled={!reason}>
          {m('markLost')}
        </button>
      </div>
    </form>
  )
}

function Entry({ activity, names }: { activity: Activity; names: Map<string, string> }) {
  const when = activity.done_at ?? activity.due_at ?? activity.created_at
  return (
    <li>
      <time datetime={when} class="muted">
        {activity.done_at ? fmt.dateTime(when) : m('due', { when: fmt.dateTime(when) })}
      </time>
      <p>
        <strong>{activity.subject || m(`kind_${activity.kind}`)}</strong>
      </p>
      <p class="muted">
        {[m(`kind_${activity.kind}`), names.get(activity.assignee_id)].filter(Boolean).join(' · ')}{' '}
        {isOverdue(activity) && <span class="pill warn">{m('overdue')}</span>}
      </p>
      {activity.body && <p>{activity.body}</p>}
    </li>
  )
}

export function DealView({ id }: { id: string }) {
  const data = useLive(() => dealView(id), [id])
  const [losing, setLosing] = useState(false)
  if (data === undefined) return <div class="screen" />
  if (data === null)
    return (
      <div class="screen">
        <p class="muted">{m('gone')}</p>
        <StoryContent id={id} />
      </div>
    )
  const { deal, stages, client, names, activities } = data
  const open = deal.status === 'open'
  const reasons = data.reasons.filter((r) => r.is_active)
  const sheet = (kind: SheetKind) =>
    openSheet({
      kind,
      name: client?.name ?? deal.title,
      company_id: deal.company_id,
      contact_id: deal.contact_id,
      deal_id: deal.id,
    })

  return (
    <div class="screen">
      <h1>{deal.title}</h1>
      <p class="deal-head">
        {client && <a href={clientHref(client.kind, client.id)}>{client.name}</a>}
        <span class={`pill${deal.status === 'lost' ? ' danger' : ''}`} data-testid="deal-status">
          {m(deal.status)}
        </span>
        {isRotten(deal) && <span class="pill warn">{m('rotten')}</span>}
      </p>
      {data.issues > 0 && (
        <p class="warn">
          <a href="/sync">{m('issue')}</a>
        </p>
      )}
      <dl class="facts">
        <div>
          <dt>{m('amount')}</dt>
          <dd data-testid="deal-amount">{fmt.money(deal.amount_minor, deal.currency)}</dd>
        </div>
        {deal.expected_close_on && (
          <div>
            <dt>{m('close')}</dt>
            <dd>{day(deal.expected_close_on)}</dd>
          </div>
        )}
        <div>
          <dt>{m('owner')}</dt>
          <dd>{names.get(deal.owner_id) ?? ''}</dd>
        </div>
        {deal.status === 'lost' && deal.lost_reason_id && (
          <div>
            <dt>{m('reasonWas')}</dt>
            <dd>
              {[data.reasons.find((r) => r.id === deal.lost_reason_id)?.name, deal.lost_note]
                .filter(Boolean)
                .join(': ')}
            </dd>
          </div>
        )}
      </dl>

      {open && (
        <>
          <fieldset class="chips stepper">
            <legend>{m('stage')}</legend>
            {stages.map((s) => (
              <button
                type="button"
                class="chip"
                aria-pressed={s.id === deal.stage_id}
                onClick={() =>
                  s.id !== deal.stage_id && void mutate('deal.move', { id: deal.id, stage_id: s.id }, deal.version)
                }
              >
                {s.name}
              </button>
            ))}
          </fieldset>
          <div class="actions">
            <button
              type="button"
              class="primary"
              onClick={() => void mutate('deal.win', { id: deal.id }, deal.version)}
            >
              {m('won')}
            </button>
            <button
              type="button"
              class="danger"
              aria-expanded={losing}
              aria-controls={losing ? 'lost-form' : undefined}
              onClick={() => setLosing(!losing)}
            >
              {m('lost')}
            </button>
          </div>
          {losing && <LostForm deal={deal} reasons={reasons} onDone={() => setLosing(false)} />}
        </>
      )}

      <AmountForm deal={deal} />

      <div class="actions">
        <button type="button" onClick={() => sheet('call')}>
          {m('call')}
        </button>
        <button type="button" onClick={() => sheet('note')}>
          {m('noteAction')}
        </button>
        <button type="button" onClick={() => sheet('task')}>
          {m('task')}
        </button>
      </div>

      <section aria-labelledby="deal-activity">
        <h2 id="deal-activity">{m('activity')}</h2>
        {activities.length ? (
          <ol class="timeline">
            {activities.map((activity) => (
              <Entry key={activity.id} activity={activity} names={names} />
            ))}
          </ol>
        ) : (
          <p class="empty">{m('nothing')}</p>
        )}
      </section>
      <p>
        <a href={`/deals/${deal.id}/story`}>{m('story')}</a>
      </p>
    </div>
  )
}
