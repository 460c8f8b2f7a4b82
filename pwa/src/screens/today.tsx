// Today: what is overdue, what is due today (tasks, meetings, follow-ups) and the next few days, from the device.
import type { Activity } from '../api/client'
import { db } from '../db/db'
import { mutate } from '../db/local'
import { clientHref, clientOf } from '../db/queries'
import { useLive, useSession } from '../hooks'
import { defineMessages, fmt } from '../i18n'

const m = defineMessages({
  en: {
    title: 'Today',
    hello: 'Hello, {name}',
    overdue: 'Overdue',
    today: 'Today',
    upcoming: 'Next 7 days',
    done: 'Done today',
    nothing: 'Nothing due. A good day to call a client you have not spoken to in a while.',
    complete: 'Mark “{subject}” done',
    task: 'Task',
    meeting: 'Meeting',
    call: 'Call',
    email: 'E-mail',
    note: 'Note',
  },
  es: {
    title: 'Hoy',
    hello: 'Hola, {name}',
    overdue: 'Vencidas',
    today: 'Hoy',
    upcoming: 'Próximos 7 días',
    done: 'Hecho hoy',
    nothing: 'Nada pendiente. Buen día para llamar a un cliente con el que no hablas hace tiempo.',
    complete: 'Marcar «{subject}» como hecha',
    task: 'Tarea',
    meeting: 'Reunión',
    call: 'Llamada',
    email: 'Correo',
    note: 'Nota',
  },
})

interface Row {
  activity: Activity
  client: Awaited<ReturnType<typeof clientOf>>
}

async function agenda(me: string) {
  const now = new Date()
  const endOfDay = new Date(now)
  endOfDay.setHours(23, 59, 59, 999)
  const startOfDay = new Date(now)
  startOfDay.setHours(0, 0, 0, 0)
  const week = new Date(endOfDay)
  week.setDate(week.getDate() + 7)
  const mine = await db.activity.where('assignee_id').equals(me).toArray()
  const rows = async (list: Activity[]): Promise<Row[]> =>
    Promise.all(list.map(async (activity) => ({ activity, client: await clientOf(activity) })))
  const open = mine.filter((a) => !a.done_at && a.due_at).sort((a, b) => (a.due_at ?? '').localeCompare(b.due_at ?? ''))
  const due = (a: Activity) => new Date(a.due_at ?? 0)
  return {
    overdue: await rows(open.filter((a) => due(a) < now)),
    today: await rows(open.filter((a) => due(a) >= now && due(a) <= endOfDay)),
    upcoming: await rows(open.filter((a) => due(a) > endOfDay && due(a) <= week)),
    done: await rows(
      mine
        .filter((a) => a.done_at && new Date(a.done_at) >= startOfDay)
        .sort((a, b) => (b.done_at ?? '').localeCompare(a.done_at ?? '')),
    ),
  }
}

function Item({ row, overdue, later }: { row: Row; overdue?: boolean; later?: boolean }) {
  const { activity, client } = row
  const when = activity.done_at ?? activity.due_at
  return (
    <li class="item" data-testid="agenda-item">
      {!activity.done_at && (
        <button
          type="button"
          class="check"
          aria-label={m('complete', { subject: activity.subject })}
          onClick={() =>
            void mutate(
              'task.complete',
              { id: activity.id, done_at: new Date().toISOString() },
              activity.version || null,
            )
          }
        >
          ✓
        </button>
      )}
      <a class="grow item" href={client ? clientHref(client.kind, client.id) : '#'}>
        <span class="grow">
          <span class="title">{activity.subject || m(activity.kind)}</span>
          <span class="sub">
            {[
              m(activity.kind),
              client?.name,
              when && (overdue ? fmt.relative(when) : later ? fmt.dayTime(when) : fmt.time(when)),
            ]
              .filter(Boolean)
              .join(' · ')}
          </span>
        </span>
        {overdue && <span class="pill warn">{m('overdue')}</span>}
      </a>
    </li>
  )
}

function Section({ title, rows, overdue, later }: { title: string; rows: Row[]; overdue?: boolean; later?: boolean }) {
  if (!rows.length) return null
  return (
    <section>
      <h2>
        {title} <span class="muted">({fmt.number(rows.length)})</span>
      </h2>
      <ul class="list card">
        {rows.map((row) => (
          <Item key={row.activity.id} row={row} overdue={overdue} later={later} />
        ))}
      </ul>
    </section>
  )
}

export function Today() {
  const session = useSession()
  const me = session?.user.id ?? ''
  const data = useLive(() => agenda(me), [me])
  const empty = data && !data.overdue.length && !data.today.length && !data.upcoming.length
  return (
    <div class="screen">
      <h1>{session ? m('hello', { name: session.user.name.split(' ')[0] }) : m('title')}</h1>
      <p class="muted">{fmt.date(new Date().toISOString())}</p>
      {data && (
        <>
          <Section title={m('overdue')} rows={data.overdue} overdue />
          <Section title={m('today')} rows={data.today} />
          <Section title={m('upcoming')} rows={data.upcoming} later />
          {empty && <p class="empty">{m('nothing')}</p>}
          <Section title={m('done')} rows={data.done} />
        </>
      )}
    </div>
  )
}
