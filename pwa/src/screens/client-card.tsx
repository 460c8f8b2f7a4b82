// A client's card: who they are and how to reach them, their people, open deals and what happened with them, and
// the rep's actions on them (call, log a call, note, task, share) at thumb reach. Everything is read on the device.
import { type ComponentChildren, Fragment } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import type { Activity, Company, Contact, Schemas } from '../api/client'
import { type CallTarget, callClient, openSheet } from '../components/call-sheet'
import { Sheet } from '../components/sheet'
import { db } from '../db/db'
import { mutate } from '../db/local'
import {
  type ClientKind,
  activitiesOf,
  clientHref,
  isOverdue,
  isRotten,
  openDealsOf,
  phoneOf,
  rememberRecent,
  userNames,
} from '../db/queries'
import { useLive, useSession } from '../hooks'
import { defineMessages, fmt, locale } from '../i18n'

const m = defineMessages({
  en: {
    company: 'Company',
    contact: 'Contact',
    owner: 'Owner: {name}',
    at: 'Works at',
    details: 'Details',
    phone: 'Phone',
    email: 'E-mail',
    web: 'Website',
    address: 'Address',
    industry: 'Industry',
    size: 'Employees',
    segment: 'Segment',
    source: 'Source',
    title: 'Job title',
    tags: 'Tags',
    consent: 'Consent',
    phoneConsent: 'Calls: {yes}',
    emailConsent: 'E-mails: {yes}',
    yes: 'yes',
    no: 'no',
    people: 'People',
    noPeople: 'No contacts at this company yet.',
    deals: 'Open deals',
    noDeals: 'No open deals.',
    stalled: 'Stalled',
    timeline: 'Timeline',
    todo: 'To do',
    history: 'History',
    nothing: 'Nothing logged yet. Log a call or add a note below.',
    due: 'due {when}',
    overdue: 'Overdue',
    more: 'Show older',
    actions: 'Actions',
    call: 'Call',
    callName: 'Call {name}',
    logCall: 'Log call',
    note: 'Note',
    task: 'Task',
    share: 'Share',
    shareTitle: 'Share with colleagues',
    shareHint: 'They will see this client and its deals and activities.',
    nobody: 'There are no colleagues to share with.',
    cancel: 'Cancel',
    shared: 'Shared with {names}. It is sent when you are online.',
    missing: 'Not on this device',
    missingText: 'This client is not on this device. It may have been deleted, or it is not shared with you.',
    back: 'Back to Clients',
    k_call: 'Call',
    k_meeting: 'Meeting',
    k_email: 'E-mail',
    k_note: 'Note',
    k_task: 'Task',
    connected: 'Connected',
    no_answer: 'No answer',
    voicemail: 'Voicemail',
    busy: 'Busy',
  },
  es: {
    company: 'Empresa',
    contact: 'Contacto',
    owner: 'Responsable: {name}',
    at: 'Trabaja en',
    details: 'Datos',
    phone: 'Teléfono',
    email: 'Correo',
    web: 'Web',
    address: 'Dirección',
    industry: 'Sector',
    size: 'Empleados',
    segment: 'Segmento',
    source: 'Origen',
    title: 'Cargo',
    tags: 'Etiquetas',
    consent: 'Consentimiento',
    phoneConsent: 'Llamadas: {yes}',
    emailConsent: 'Correos: {yes}',
    yes: 'sí',
    no: 'no',
    people: 'Personas',
    noPeople: 'Aún no hay contactos en esta empresa.',
    deals: 'Negocios abiertos',
    noDeals: 'No hay negocios abiertos.',
    stalled: 'Estancado',
    timeline: 'Historial',
    todo: 'Pendiente',
    history: 'Actividad',
    nothing: 'Aún no hay nada. Registra una llamada o añade una nota abajo.',
    due: 'vence {when}',
    overdue: 'Vencida',
    more: 'Ver anteriores',
    actions: 'Acciones',
    call: 'Llamar',
    callName: 'Llamar a {name}',
    logCall: 'Anotar llamada',
    note: 'Nota',
    task: 'Tarea',
    share: 'Compartir',
    shareTitle: 'Compartir con compañeros',
    shareHint: 'Verán este cliente, sus negocios y su actividad.',
    nobody: 'No hay compañeros con quien compartir.',
    cancel: 'Cancelar',
    shared: 'Compartido con {names}. Se envía cuando tengas conexión.',
    missing: 'No está en este dispositivo',
    missingText:
      'Este cliente no está en este dispositivo. Puede que se haya borrado o que no esté compartido contigo.',
    back: 'Volver a Clientes',
    k_call: 'Llamada',
    k_meeting: 'Reunión',
    k_email: 'Correo',
    k_note: 'Nota',
    k_task: 'Tarea',
    connected: 'Contestó',
    no_answer: 'No contestó',
    voicemail: 'Buzón de voz',
    busy: 'Ocupado',
  },
})

const HISTORY_PAGE = 30

const isContact = (client: Company | Contact): client is Contact => 'phones' in client

/** What a call, note or task about the client is linked to: a contact's company too, so it shows on its card. */
const targetOf = (client: Company | Contact) =>
  isContact(client)
    ? { name: client.name, company_id: client.company_id, contact_id: client.id }
    : { name: client.name, company_id: client.id, contact_id: null }

/** A `tel:` link that asks "How did it go?" when the user comes back from the call. */
export function CallLink(props: { phone: string; target: Omit<CallTarget, 'kind'>; label?: string }) {
  return (
    <a
      class={props.label ? 'button primary' : 'call'}
      href={`tel:${props.phone}`}
      aria-label={props.label ? undefined : m('callName', { name: props.target.name })}
      onClick={() => callClient(props.target)}
    >
      <svg viewBox="0 0 24 24" aria-hidden="true">
        <path d="M5 3h4l2 5-3 2a12 12 0 0 0 6 6l2-3 5 2v4a2 2 0 0 1-2 2A17 17 0 0 1 3 5a2 2 0 0 1 2-2z" />
      </svg>
      {props.label}
    </a>
  )
}

async function load(kind: string, id: string) {
  const client =
    kind === 'company' ? await db.company.get(id) : kind === 'contact' ? await db.contact.get(id) : undefined
  if (!client) return null
  const field = isContact(client) ? 'contact_id' : 'company_id'
  const [names, deals, activities, contacts, company] = await Promise.all([
    userNames(),
    openDealsOf(field, id),
    activitiesOf(field, id),
    isContact(client) ? [] : db.contact.where('company_id').equals(id).toArray(),
    isContact(client) && client.company_id ? db.company.get(client.company_id) : undefined,
  ])
  const collator = new Intl.Collator(locale())
  contacts.sort((a, b) => collator.compare(a.name, b.name))
  const open = activities
    .filter((a) => !a.done_at)
    .sort((a, b) => (a.due_at ?? '\uffff').localeCompare(b.due_at ?? '\uffff'))
  const clientKind: ClientKind = isContact(client) ? 'contact' : 'company'
  return { kind: clientKind, client, names, deals, contacts, company, open, done: activities.filter((a) => a.done_at) }
}

type Card = NonNullable<Awaited<ReturnType<typeof load>>>

function Details({ card }: { card: Card }) {
  const { client } = card
  const contact = isContact(client) ? client : null
  const company = isContact(client) ? null : client
  const refs = targetOf(client)
  const phones = contact ? contact.phones : company?.phone ? [company.phone] : []
  const country = company?.country && new Intl.DisplayNames([locale()], { type: 'region' }).of(company.country)
  const address = company && [company.address, company.city, country].filter(Boolean).join(', ')
  const rows: [string, ComponentChildren][] = [
    [m('title'), contact?.title],
    [
      m('phone'),
      phones.length > 0 &&
        phones.map((phone) => (
          <div>
            <a href={`tel:${phone}`} onClick={() => callClient(refs)}>
              {phone}
            </a>
          </div>
        )),
    ],
    [
      m('email'),
      contact?.emails.length &&
        contact.emails.map((email) => (
          <div>
            <a href={`mailto:${email}`}>{email}</a>
          </div>
        )),
    ],
    [
      m('web'),
      company?.domain && (
        <a href={`https://${company.domain}`} target="_blank" rel="noopener noreferrer">
          {company.domain}
        </a>
      ),
    ],
    [m('address'), address],
    [m('industry'), company?.industry],
    [m('size'), company?.size != null && fmt.number(company.size)],
    [m('segment'), client.segment],
    [m('source'), client.source],
    [
      m('tags'),
      client.tags.length > 0 && (
        <span class="pills">
          {client.tags.map((tag) => (
            <span class="pill">{tag}</span>
          ))}
        </span>
      ),
    ],
    [
      m('consent'),
      contact &&
        `${m('phoneConsent', { yes: m(contact.phone_consent ? 'yes' : 'no') })} · ${m('emailConsent', { yes: m(contact.email_consent ? 'yes' : 'no') })}`,
    ],
  ]
  return (
    <section aria-labelledby="details-title">
      <h2 id="details-title">{m('details')}</h2>
      <dl class="details card">
        {rows
          .filter(([, value]) => value)
          .map(([label, value]) => (
            <Fragment key={label}>
              <dt>{label}</dt>
              <dd>{value}</dd>
            </Fragment>
          ))}
      </dl>
    </section>
  )
}

function People({ contacts, companyId }: { contacts: Contact[]; companyId: string }) {
  return (
    <section aria-labelledby="people-title">
      <h2 id="people-title">{m('people')}</h2>
      {contacts.length ? (
        <ul class="list card">
          {contacts.map((contact) => (
            <li class="item" data-testid="company-contact">
              <a class="grow item" href={clientHref('contact', contact.id)}>
                <span class="grow">
                  <span class="title">{contact.name}</span>
                  {(contact.title || contact.emails[0]) && (
                    <span class="sub">{[contact.title, contact.emails[0]].filter(Boolean).join(' · ')}</span>
                  )}
                </span>
              </a>
              {contact.phones[0] && (
                <CallLink
                  phone={contact.phones[0]}
                  target={{ name: contact.name, company_id: companyId, contact_id: contact.id }}
                />
              )}
            </li>
          ))}
        </ul>
      ) : (
        <p class="empty">{m('noPeople')}</p>
      )}
    </section>
  )
}

function Deals({ deals }: { deals: Card['deals'] }) {
  return (
    <section aria-labelledby="deals-title">
      <h2 id="deals-title">{m('deals')}</h2>
      {deals.length ? (
        <ul class="list card">
          {deals.map(({ deal, stage }) => (
            <li data-testid="client-deal">
              <a class="item" href={`/deals/${deal.id}`}>
                <span class="grow">
                  <span class="title">{deal.title}</span>
                  <span class="sub">{stage?.name}</span>
                </span>
                {isRotten(deal) && <span class="pill warn">{m('stalled')}</span>}
                <span class="amount">{fmt.money(deal.amount_minor, deal.currency)}</span>
              </a>
            </li>
          ))}
        </ul>
      ) : (
        <p class="empty">{m('noDeals')}</p>
      )}
    </section>
  )
}

function Entry({ activity, who }: { activity: Activity; who: string | undefined }) {
  const open = !activity.done_at
  const when = activity.done_at ?? activity.due_at ?? activity.created_at
  const overdue = isOverdue(activity)
  const body = activity.body && activity.body.length > 160 ? `${activity.body.slice(0, 160)}…` : activity.body
  return (
    <li data-testid="timeline-item">
      <p>
        <strong>{activity.subject || m(`k_${activity.kind}`)}</strong>{' '}
        {overdue && <span class="pill warn">{m('overdue')}</span>}
      </p>
      <p class="muted">
        {[
          m(`k_${activity.kind}`),
          activity.outcome && m(activity.outcome),
          open && activity.due_at
            ? m('due', { when: `${fmt.relative(activity.due_at)} (${fmt.dateTime(activity.due_at)})` })
            : fmt.relative(when),
          who,
        ]
          .filter(Boolean)
          .join(' · ')}
      </p>
      {body && <p>{body}</p>}
    </li>
  )
}

function Timeline({ card }: { card: Card }) {
  const [shown, setShown] = useState(HISTORY_PAGE)
  const { open, done, names } = card
  return (
    <section aria-labelledby="timeline-title">
      <h2 id="timeline-title">{m('timeline')}</h2>
      {!open.length && !done.length && <p class="empty">{m('nothing')}</p>}
      {open.length > 0 && (
        <>
          <h3>{m('todo')}</h3>
          <ol class="timeline" data-testid="open-tasks">
            {open.map((activity) => (
              <Entry key={activity.id} activity={activity} who={names.get(activity.assignee_id)} />
            ))}
          </ol>
        </>
      )}
      {done.length > 0 && (
        <>
          <h3>{m('history')}</h3>
          <ol class="timeline" data-testid="history">
            {done.slice(0, shown).map((activity) => (
              <Entry key={activity.id} activity={activity} who={names.get(activity.owner_id)} />
            ))}
          </ol>
          {done.length > shown && (
            <button type="button" onClick={() => setShown(shown + HISTORY_PAGE)}>
              {m('more')}
            </button>
          )}
        </>
      )}
    </section>
  )
}

function SharePicker(props: { kind: ClientKind; id: string; me: string; onClose: (names?: string[]) => void }) {
  const colleagues = useLive(async () => {
    const users = await db.user.filter((user) => user.is_active && user.id !== props.me).toArray()
    return users.sort((a, b) => a.name.localeCompare(b.name, locale()))
  }, [props.me])
  const [picked, setPicked] = useState<string[]>([])
  const form = useRef<HTMLDivElement>(null)
  // Focus moves into the sheet once the colleagues are read, so keyboard and screen reader users start there.
  useEffect(() => form.current?.querySelector<HTMLElement>('input, button')?.focus(), [colleagues === undefined])

  async function share(event: Event) {
    event.preventDefault()
    if (!picked.length) return
    const args: Schemas['ShareCreateArgs'] = { entity: props.kind, entity_id: props.id, user_ids: picked }
    await mutate('share.create', args)
    props.onClose(colleagues?.filter((user) => picked.includes(user.id)).map((user) => user.name))
  }

  return (
    <Sheet labelledBy="share-title" onClose={() => props.onClose()} onSubmit={share}>
      <div ref={form}>
        <h2 id="share-title">{m('shareTitle')}</h2>
        <p class="muted">{m('shareHint')}</p>
        {colleagues?.length === 0 && <p class="empty">{m('nobody')}</p>}
        {colleagues && colleagues.length > 0 && (
          <fieldset class="picker">
            <legend class="visually-hidden">{m('shareTitle')}</legend>
            {colleagues.map((user) => (
              <label>
                <input
                  type="checkbox"
                  checked={picked.includes(user.id)}
                  onChange={(e) =>
                    setPicked(e.currentTarget.checked ? [...picked, user.id] : picked.filter((id) => id !== user.id))
                  }
                />
                <span>{user.name}</span>
              </label>
            ))}
          </fieldset>
        )}
        <div class="actions">
          <button type="button" onClick={() => props.onClose()}>
            {m('cancel')}
          </button>
          <button type="submit" class="primary" disabled={!picked.length} data-testid="share-submit">
            {m('share')}
          </button>
        </div>
      </div>
    </Sheet>
  )
}

function Card({ kind, id }: { kind: string; id: string }) {
  const card = useLive(() => load(kind, id), [kind, id])
  const me = useSession()?.user.id ?? ''
  const [sharing, setSharing] = useState(false)
  const [shared, setShared] = useState('')
  const shareButton = useRef<HTMLButtonElement>(null)
  const found = Boolean(card)
  useEffect(() => {
    if (card) void rememberRecent(card.kind, id)
  }, [found])

  if (card === undefined) return null
  if (card === null)
    return (
      <div class="screen">
        <h1>{m('missing')}</h1>
        <p>{m('missingText')}</p>
        <p>
          <a href="/clients">{m('back')}</a>
        </p>
      </div>
    )

  const { client, company, names } = card
  const contact = isContact(client) ? client : null
  const refs = targetOf(client)
  const phone = phoneOf(client)
  const closeShare = (sharedWith?: string[]) => {
    setSharing(false)
    if (sharedWith) setShared(m('shared', { names: new Intl.ListFormat(locale()).format(sharedWith) }))
    shareButton.current?.focus()
  }
  return (
    <div class="screen client-card" data-testid="client-card" data-kind={card.kind}>
      <h1>{client.name}</h1>
      <p class="muted">
        {m(card.kind)}
        {company && (
          <>
            {` · ${m('at')} `}
            <a href={clientHref('company', company.id)}>{company.name}</a>
          </>
        )}
      </p>
      <p class="muted">{m('owner', { name: names.get(client.owner_id) ?? '—' })}</p>
      <p role="status" data-testid="share-status">
        {shared}
      </p>
      <div class="quick" role="group" aria-label={m('actions')}>
        {phone ? (
          <CallLink phone={phone} target={refs} label={m('call')} />
        ) : (
          <button type="button" disabled>
            {m('call')}
          </button>
        )}
        <button type="button" onClick={() => openSheet({ kind: 'call', ...refs })}>
          {m('logCall')}
        </button>
        <button type="button" onClick={() => openSheet({ kind: 'note', ...refs })}>
          {m('note')}
        </button>
        <button type="button" onClick={() => openSheet({ kind: 'task', ...refs })}>
          {m('task')}
        </button>
        <button
          type="button"
          ref={shareButton}
          aria-haspopup="dialog"
          onClick={() => setSharing(true)}
          data-testid="action-share"
        >
          {m('share')}
        </button>
      </div>
      <Details card={card} />
      {!contact && <People contacts={card.contacts} companyId={client.id} />}
      <Deals deals={card.deals} />
      <Timeline card={card} />
      {sharing && <SharePicker kind={card.kind} id={client.id} me={me} onClose={closeShare} />}
    </div>
  )
}

/** /clients/:kind/:id — keyed so that moving from one card to another starts afresh (share state, paging). */
export function ClientCard({ kind = '', id = '' }: { kind?: string; id?: string }) {
  return <Card key={`${kind}/${id}`} kind={kind} id={id} />
}
