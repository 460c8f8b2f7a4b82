// Sync: what is waiting to be sent, what the server did not take as sent (conflicts to settle field by field,
// rejections to read), when the device last synced; the language, and signing out.
import { useEffect, useRef, useState } from 'preact/hooks'
import { signOut } from '../auth'
import { db, type Issue, type OutboxRow } from '../db/db'
import { mutate } from '../db/local'
import { userNames } from '../db/queries'
import { useLive, useOnline, useSession, useSyncStatus } from '../hooks'
import { defineMessages, fmt, lang, plural, setLang, type Lang, type Params } from '../i18n'
import { engine } from '../sync/triggers'

const m = defineMessages({
  en: {
    title: 'Sync',
    online: 'Online',
    offline: 'Offline: changes are kept on this device and sent when the connection is back.',
    last: 'Last synced {when}',
    never: 'Not synced yet',
    now: 'Sync now',
    pending: 'Waiting to be sent',
    nothingPending: 'Everything is sent.',
    issues: 'Needs your attention',
    conflict: 'Someone else changed this deal while you were editing it.',
    rejected: 'The server did not accept this change.',
    field: 'Field',
    mine: 'Keep mine: {value}',
    theirs: 'Keep theirs: {value}',
    apply: 'Apply',
    dismiss: 'Dismiss',
    failed: 'The server did not answer as expected. Trying again shortly.',
    reading: 'Restoring what the server has…',
    amount_minor: 'Amount',
    owner_id: 'Owner',
    stage: 'Stage',
    language: 'Language',
    signOut: 'Sign out',
    unsynced: (p: Params) =>
      plural(Number(p.n), {
        one: 'This device still has {n} change that has not reached the server. Signing out deletes it.',
        other: 'This device still has {n} changes that have not reached the server. Signing out deletes them.',
      }),
    signOutAnyway: 'Sign out anyway',
    cancel: 'Cancel',
    signedInAs: 'Signed in as {name} ({email})',
    'company.create': 'New company',
    'company.update': 'Company edited',
    'contact.create': 'New contact',
    'contact.update': 'Contact edited',
    'deal.create': 'New deal',
    'deal.update': 'Deal edited',
    'deal.move': 'Deal moved',
    'deal.win': 'Deal won',
    'deal.lose': 'Deal lost',
    'activity.log': 'Activity logged',
    'task.create': 'Task created',
    'task.complete': 'Task done',
    'share.create': 'Shared with a colleague',
    won: 'Won',
    lost: 'Lost',
  },
  es: {
    title: 'Sincronizar',
    online: 'En línea',
    offline: 'Sin conexión: los cambios se guardan en este dispositivo y se envían cuando vuelva la conexión.',
    last: 'Última sincronización {when}',
    never: 'Aún sin sincronizar',
    now: 'Sincronizar ahora',
    pending: 'Pendiente de enviar',
    nothingPending: 'Todo está enviado.',
    issues: 'Requiere tu atención',
    conflict: 'Otra persona cambió este negocio mientras lo editabas.',
    rejected: 'El servidor no aceptó este cambio.',
    field: 'Campo',
    mine: 'Mantener el mío: {value}',
    theirs: 'Mantener el suyo: {value}',
    apply: 'Aplicar',
    dismiss: 'Descartar',
    failed: 'El servidor no respondió como se esperaba. Se volverá a intentar en breve.',
    reading: 'Recuperando lo que tiene el servidor…',
    amount_minor: 'Importe',
    owner_id: 'Responsable',
    stage: 'Etapa',
    language: 'Idioma',
    signOut: 'Cerrar sesión',
    unsynced: (p: Params) =>
      plural(Number(p.n), {
        one: 'Este dispositivo tiene {n} cambio que no ha llegado al servidor. Cerrar sesión lo borra.',
        other: 'Este dispositivo tiene {n} cambios que no han llegado al servidor. Cerrar sesión los borra.',
      }),
    signOutAnyway: 'Cerrar sesión de todos modos',
    cancel: 'Cancelar',
    signedInAs: 'Sesión de {name} ({email})',
    'company.create': 'Empresa nueva',
    'company.update': 'Empresa editada',
    'contact.create': 'Contacto nuevo',
    'contact.update': 'Contacto editado',
    'deal.create': 'Negocio nuevo',
    'deal.update': 'Negocio editado',
    'deal.move': 'Negocio movido',
    'deal.win': 'Negocio ganado',
    'deal.lose': 'Negocio perdido',
    'activity.log': 'Actividad registrada',
    'task.create': 'Tarea creada',
    'task.complete': 'Tarea hecha',
    'share.create': 'Compartido con un compañero',
    won: 'Ganado',
    lost: 'Perdido',
  },
})

/** One decision per conflict: a deal update's amount and owner each; a stage move, win or loss as a whole. */
function decisions(issue: Issue): string[] {
  return issue.mutation.name === 'deal.update' ? issue.conflicts : ['stage']
}

async function describe(row: OutboxRow): Promise<string> {
  const id = String(row.args.id)
  const named = (await db.company.get(id)) ?? (await db.contact.get(id))
  const deal = await db.deal.get(id)
  const activity = await db.activity.get(id)
  return (named?.name ?? deal?.title ?? activity?.subject ?? String(row.args.name ?? '')) || ''
}

function useValueText() {
  return useLive(async () => {
    const [stages, names] = await Promise.all([db.stage.toArray(), userNames()])
    const stageName = new Map(stages.map((s) => [s.id, s.name]))
    // Wrapped in an object: a bare function handed to a state setter would be called as an updater.
    return {
      of: (issue: Issue, decision: string, side: 'mine' | 'theirs'): string => {
        const source = side === 'mine' ? issue.mutation.args : (issue.record ?? {})
        if (decision === 'amount_minor')
          return fmt.money(Number(source.amount_minor ?? 0), String(issue.record?.currency ?? 'EUR'))
        if (decision === 'owner_id') return names.get(String(source.owner_id)) ?? '—'
        if (side === 'mine' && issue.mutation.name === 'deal.win') return m('won')
        if (side === 'mine' && issue.mutation.name === 'deal.lose') return m('lost')
        if (side === 'theirs' && source.status && source.status !== 'open')
          return m(source.status === 'won' ? 'won' : 'lost')
        return stageName.get(String(source.stage_id)) ?? '—'
      },
    }
  })
}

function IssueCard({ issue, valueText }: { issue: Issue; valueText: NonNullable<ReturnType<typeof useValueText>> }) {
  const [choice, setChoice] = useState<Record<string, 'mine' | 'theirs'>>({})
  const name = useLive(() => describe(issue.mutation), [issue.id])
  const problem = issue.problem as { title?: string; detail?: string } | null

  async function resolve() {
    const mine = decisions(issue).filter((d) => choice[d] === 'mine')
    const version = Number(issue.record?.version ?? 0) || null
    if (mine.length && issue.mutation.name === 'deal.update') {
      const args = Object.fromEntries(mine.map((field) => [field, issue.mutation.args[field]]))
      await mutate('deal.update', { id: issue.mutation.args.id, ...args }, version)
    } else if (mine.length) {
      await mutate(issue.mutation.name, issue.mutation.args, version)
    }
    await db.issue.delete(issue.id)
  }

  return (
    <li class="card" data-testid="issue">
      <p>
        <strong>{m(issue.mutation.name)}</strong> · {name}
      </p>
      {issue.status === 'rejected' ? (
        <>
          <p class="danger-text">{m('rejected')}</p>
          {problem && <p class="muted">{problem.detail ?? problem.title}</p>}
          {/* Until the server's copy is back on the device, dismissing would leave the refused change showing. */}
          {issue.unread ? (
            <p class="muted" role="status">
              {m('reading')}
            </p>
          ) : (
            <div class="actions">
              <button type="button" onClick={() => void db.issue.delete(issue.id)}>
                {m('dismiss')}
              </button>
            </div>
          )}
        </>
      ) : (
        <>
          <p class="warn">{m('conflict')}</p>
          {decisions(issue).map((decision) => (
            <fieldset class="chips" key={decision}>
              <legend>{m(decision === 'stage' ? 'stage' : (decision as 'amount_minor' | 'owner_id'))}</legend>
              {(['mine', 'theirs'] as const).map((side) => (
                <button
                  type="button"
                  class="chip"
                  aria-pressed={choice[decision] === side}
                  onClick={() => setChoice({ ...choice, [decision]: side })}
                >
                  {m(side, { value: valueText.of(issue, decision, side) })}
                </button>
              ))}
            </fieldset>
          ))}
          <div class="actions">
            <button
              type="button"
              class="primary"
              disabled={decisions(issue).some((d) => !choice[d])}
              onClick={() => void resolve()}
            >
              {m('apply')}
            </button>
          </div>
        </>
      )}
    </li>
  )
}

function Pending() {
  const rows = useLive(async () => {
    const queued = await db.outbox.orderBy('id').toArray()
    return Promise.all(queued.map(async (row) => ({ row, name: await describe(row) })))
  })
  if (!rows) return null
  return (
    <section>
      <h2>
        {m('pending')} <span class="muted">({fmt.number(rows.length)})</span>
      </h2>
      {rows.length ? (
        <ul class="list card">
          {rows.map(({ row, name }) => (
            <li class="item" key={row.id} data-testid="pending">
              <span class="grow">
                <span class="title">{m(row.name)}</span>
                <span class="sub">{[name, fmt.relative(row.at)].filter(Boolean).join(' · ')}</span>
              </span>
            </li>
          ))}
        </ul>
      ) : (
        <p class="empty">{m('nothingPending')}</p>
      )}
    </section>
  )
}

function Account() {
  const session = useSession()
  const pending = useLive(() => db.outbox.count()) ?? 0
  const [asking, setAsking] = useState(false)
  // The question replaces the button that asked it: focus goes to its safe answer, then back.
  const keep = useRef<HTMLButtonElement>(null)
  const ask = useRef<HTMLButtonElement>(null)
  const mounted = useRef(false)
  useEffect(() => {
    if (mounted.current) (asking ? keep : ask).current?.focus()
    mounted.current = true
  }, [asking])
  const out = () => void signOut().then(() => location.assign('/'))
  return (
    <section>
      <h2>{m('signOut')}</h2>
      {session && <p class="muted">{m('signedInAs', { name: session.user.name, email: session.user.email })}</p>}
      <label class="field">
        <span>{m('language')}</span>
        <select value={lang} onChange={(e) => setLang(e.currentTarget.value as Lang)}>
          <option value="en">English</option>
          <option value="es">Español</option>
        </select>
      </label>
      {asking ? (
        <div class="card" role="alertdialog" aria-labelledby="unsynced">
          <p id="unsynced" class="warn">
            {m('unsynced', { n: pending })}
          </p>
          <div class="actions">
            <button type="button" ref={keep} onClick={() => setAsking(false)}>
              {m('cancel')}
            </button>
            <button type="button" class="danger" onClick={out}>
              {m('signOutAnyway')}
            </button>
          </div>
        </div>
      ) : (
        <div class="actions">
          <button type="button" class="danger" ref={ask} onClick={() => (pending ? setAsking(true) : out())}>
            {m('signOut')}
          </button>
        </div>
      )}
    </section>
  )
}

export function SyncScreen() {
  const online = useOnline()
  const status = useSyncStatus()
  const last = useLive(() => db.getMeta<string>('last_sync'))
  const issues = useLive(() => db.issue.orderBy('id').toArray())
  const valueText = useValueText()
  return (
    <div class="screen">
      <h1>{m('title')}</h1>
      <div class="card">
        <p>
          <strong>{online ? m('online') : m('offline')}</strong>
        </p>
        <p class="muted" data-testid="last-sync">
          {last ? m('last', { when: fmt.relative(last) }) : m('never')}
        </p>
        {status.error && (
          <p class="danger-text" title={status.error}>
            {m('failed')}
          </p>
        )}
        <div class="actions">
          <button
            type="button"
            class="primary"
            disabled={!online || status.state === 'syncing'}
            onClick={() => void engine.sync()}
          >
            {m('now')}
          </button>
        </div>
      </div>
      {issues && issues.length > 0 && valueText && (
        <section>
          <h2>{m('issues')}</h2>
          <ul class="list">
            {issues.map((issue) => (
              <IssueCard key={issue.id} issue={issue} valueText={valueText} />
            ))}
          </ul>
        </section>
      )}
      <Pending />
      <Account />
    </div>
  )
}
