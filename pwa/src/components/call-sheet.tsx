// "How did it go?": the sheet that logs a call (or a note, or a task) in a few taps. A `tel:` link made through
// `callClient` opens it when the user comes back to the app; "Connected, follow up tomorrow" is three taps.
import { useEffect, useState } from 'preact/hooks'
import { mutate, newId } from '../db/local'
import { Sheet } from './sheet'
import { defineMessages } from '../i18n'

export type SheetKind = 'call' | 'note' | 'task'

export interface CallTarget {
  kind: SheetKind
  name: string
  company_id?: string | null
  contact_id?: string | null
  deal_id?: string | null
  /** Set when a `tel:` link was followed: the call's start, for its duration. */
  dialled_at?: number
}

const KEY = 'pending_call'
const opened = new EventTarget()

/** Opens the sheet now (a quick action). */
export function openSheet(target: CallTarget): void {
  localStorage.setItem(KEY, JSON.stringify(target))
  opened.dispatchEvent(new Event('open'))
}

/** Remembers the call being dialled; the sheet asks about it once the user is back in the app. */
export function callClient(target: Omit<CallTarget, 'kind'>): void {
  localStorage.setItem(KEY, JSON.stringify({ ...target, kind: 'call', dialled_at: Date.now() }))
}

function read(): CallTarget | null {
  try {
    return JSON.parse(localStorage.getItem(KEY) ?? 'null') as CallTarget | null
  } catch {
    return null
  }
}

/** The call to ask about: one dialled before the app was hidden (or reloaded), or a sheet opened on purpose. */
export function usePendingCall(): CallTarget | null {
  const [target, setTarget] = useState<CallTarget | null>(() => read())
  useEffect(() => {
    const refresh = () => setTarget(read())
    const back = () => document.visibilityState === 'visible' && refresh()
    opened.addEventListener('open', refresh)
    opened.addEventListener('close', refresh)
    document.addEventListener('visibilitychange', back)
    return () => {
      opened.removeEventListener('open', refresh)
      opened.removeEventListener('close', refresh)
      document.removeEventListener('visibilitychange', back)
    }
  }, [])
  // A dialled call is asked about once the user has left for the dialler and come back, not the moment they tap.
  if (target?.dialled_at && Date.now() - target.dialled_at < 1500 && document.visibilityState === 'visible') return null
  return target
}

function close(): void {
  localStorage.removeItem(KEY)
  opened.dispatchEvent(new Event('close'))
}

const m = defineMessages({
  en: {
    call: 'How did it go?',
    note: 'Add a note',
    task: 'New task',
    outcome: 'Outcome',
    connected: 'Connected',
    no_answer: 'No answer',
    voicemail: 'Voicemail',
    busy: 'Busy',
    noteLabel: 'Note (optional)',
    body: 'Note',
    subject: 'What to do',
    next: 'Next step',
    due: 'Due',
    none: 'None',
    tomorrow: 'Tomorrow',
    in3: 'In 3 days',
    week: 'Next week',
    pick: 'Pick a date',
    save: 'Save',
    cancel: 'Cancel',
    followUp: 'Follow up: {name}',
    call_with: 'Call with {name}',
  },
  es: {
    call: '¿Cómo fue?',
    note: 'Añadir una nota',
    task: 'Nueva tarea',
    outcome: 'Resultado',
    connected: 'Contestó',
    no_answer: 'No contestó',
    voicemail: 'Buzón de voz',
    busy: 'Ocupado',
    noteLabel: 'Nota (opcional)',
    body: 'Nota',
    subject: 'Qué hacer',
    next: 'Siguiente paso',
    due: 'Vence',
    none: 'Ninguno',
    tomorrow: 'Mañana',
    in3: 'En 3 días',
    week: 'La semana que viene',
    pick: 'Elegir fecha',
    save: 'Guardar',
    cancel: 'Cancelar',
    followUp: 'Seguimiento: {name}',
    call_with: 'Llamada con {name}',
  },
})

const OUTCOMES = ['connected', 'no_answer', 'voicemail', 'busy'] as const
const WHEN = { none: null, tomorrow: 1, in3: 3, week: 7 } as const
type When = keyof typeof WHEN | 'pick'

/** Nine in the morning, `days` from today, in the user's time zone. */
function morningIn(days: number, from: Date = new Date()): string {
  const due = new Date(from)
  due.setDate(due.getDate() + days)
  due.setHours(9, 0, 0, 0)
  return due.toISOString()
}

function Chips<T extends string>(props: {
  legend: string
  options: readonly T[]
  value: T | null
  label: (v: T) => string
  onPick: (v: T) => void
}) {
  return (
    <fieldset class="chips">
      <legend>{props.legend}</legend>
      {props.options.map((option) => (
        <button
          type="button"
          class="chip"
          aria-pressed={props.value === option}
          onClick={() => props.onPick(option)}
          data-value={option}
        >
          {props.label(option)}
        </button>
      ))}
    </fieldset>
  )
}

export function CallSheet({ call }: { call: CallTarget }) {
  const [outcome, setOutcome] = useState<(typeof OUTCOMES)[number] | null>(null)
  const [when, setWhen] = useState<When>(call.kind === 'task' ? 'tomorrow' : 'none')
  const [date, setDate] = useState('')
  const [body, setBody] = useState('')
  const [subject, setSubject] = useState('')
  const [saving, setSaving] = useState(false)

  const dueAt = (): string | null => {
    if (when === 'pick') return date ? new Date(`${date}T09:00`).toISOString() : null
    const days = WHEN[when]
    return days === null ? null : morningIn(days)
  }

  const refs = {
    company_id: call.company_id ?? null,
    contact_id: call.contact_id ?? null,
    deal_id: call.deal_id ?? null,
  }
  const canSave = call.kind === 'call' ? outcome !== null : call.kind === 'note' ? body.trim() !== '' : dueAt() !== null

  async function save(event: Event) {
    event.preventDefault()
    if (!canSave || saving) return
    setSaving(true)
    const due = dueAt()
    const now = new Date().toISOString()
    if (call.kind === 'task') {
      await mutate('task.create', {
        id: newId(),
        kind: 'task',
        subject: subject.trim() || m('followUp', { name: call.name }),
        due_at: due,
        ...refs,
      })
    } else if (call.kind === 'note') {
      await mutate('activity.log', {
        id: newId(),
        kind: 'note',
        subject: body.trim().slice(0, 80),
        body: body.trim(),
        done_at: now,
        ...refs,
      })
    } else {
      const seconds = call.dialled_at ? Math.round((Date.now() - call.dialled_at) / 1000) : null
      await mutate('activity.log', {
        id: newId(),
        kind: 'call',
        subject: m('call_with', { name: call.name }),
        direction: 'outbound',
        outcome,
        body: body.trim() || null,
        done_at: now,
        duration_seconds: seconds && seconds < 6 * 3600 ? seconds : null,
        next_step: due ? { id: newId(), kind: 'task', subject: m('followUp', { name: call.name }), due_at: due } : null,
        ...refs,
      })
    }
    close()
  }

  const title = m(call.kind)
  return (
    <Sheet labelledBy="sheet-title" onClose={close} onSubmit={save}>
      <h2 id="sheet-title">{title}</h2>
      <p class="muted">{call.name}</p>
      {call.kind === 'call' && (
        <Chips legend={m('outcome')} options={OUTCOMES} value={outcome} label={(o) => m(o)} onPick={setOutcome} />
      )}
      {call.kind === 'task' && (
        <label class="field">
          <span>{m('subject')}</span>
          <input
            value={subject}
            onInput={(e) => setSubject(e.currentTarget.value)}
            placeholder={m('followUp', { name: call.name })}
          />
        </label>
      )}
      {call.kind !== 'task' && (
        <label class="field">
          <span>{call.kind === 'note' ? m('body') : m('noteLabel')}</span>
          <textarea rows={call.kind === 'note' ? 4 : 2} value={body} onInput={(e) => setBody(e.currentTarget.value)} />
        </label>
      )}
      {call.kind !== 'note' && (
        <Chips
          legend={call.kind === 'task' ? m('due') : m('next')}
          options={
            (call.kind === 'task'
              ? ['tomorrow', 'in3', 'week', 'pick']
              : ['none', 'tomorrow', 'in3', 'week', 'pick']) as When[]
          }
          value={when}
          label={(w) => m(w)}
          onPick={setWhen}
        />
      )}
      {when === 'pick' && call.kind !== 'note' && (
        <label class="field">
          <span>{m('due')}</span>
          <input type="date" value={date} onInput={(e) => setDate(e.currentTarget.value)} required />
        </label>
      )}
      <div class="actions">
        <button type="button" onClick={close}>
          {m('cancel')}
        </button>
        <button type="submit" class="primary" disabled={!canSave || saving}>
          {m('save')}
        </button>
      </div>
    </Sheet>
  )
}
