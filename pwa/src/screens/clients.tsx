// Clients: instant, typo-tolerant search over every company and contact on the device (offline too), the user's
// recent, own and all clients, and "New client", which creates one on the device and opens its card.
import Fuse from 'fuse.js'
import { useLocation } from 'preact-iso'
import { useEffect, useMemo, useState } from 'preact/hooks'
import type { Company } from '../api/client'
import { db } from '../db/db'
import { mutate, newId } from '../db/local'
import { type ClientKind, clientHref } from '../db/queries'
import { useLive, useSession } from '../hooks'
import { defineMessages, fmt, locale, plural, type Params } from '../i18n'
import { CallLink } from './client-card'
import { ExportMenu } from '../components/export'

const m = defineMessages({
  en: {
    results: (p: Params) => plural(Number(p.n), { one: '{n} result', other: '{n} results' }),
    title: 'Clients',
    search: 'Search clients',
    placeholder: 'Name, e-mail, phone, city…',
    tabs: 'Which clients',
    recent: 'Recent',
    mine: 'Mine',
    all: 'All',
    company: 'Company',
    contact: 'Contact',
    noMatch: 'No client matches “{q}”.',
    noRecent: 'Clients you open show up here.',
    noMine: 'You do not own any client yet.',
    noClients: 'There are no clients on this device yet.',
    shown: 'Showing {n} of {total}',
    more: 'Show more',
    new: 'New client',
    kind: 'Type',
    name: 'Name',
    phone: 'Phone',
    email: 'E-mail',
    employer: 'Company',
    none: 'None',
    create: 'Create',
    anyway: 'Create anyway',
    duplicate: 'A client with this phone or e-mail is already here:',
    cancel: 'Cancel',
    nameRequired: 'Enter a name.',
    badPhone: 'Enter a phone number, e.g. +34 612 345 678.',
    badEmail: 'Enter an e-mail address, e.g. ana@example.com.',
    exportAll: 'Every client you can see.',
    exportMine: 'The clients you own.',
    exportNamed: 'Clients whose name starts with “{q}”.',
  },
  es: {
    results: (p: Params) => plural(Number(p.n), { one: '{n} resultado', other: '{n} resultados' }),
    title: 'Clientes',
    search: 'Buscar clientes',
    placeholder: 'Nombre, correo, teléfono, ciudad…',
    tabs: 'Qué clientes',
    recent: 'Recientes',
    mine: 'Míos',
    all: 'Todos',
    company: 'Empresa',
    contact: 'Contacto',
    noMatch: 'Ningún cliente coincide con «{q}».',
    noRecent: 'Aquí aparecen los clientes que abras.',
    noMine: 'Todavía no eres responsable de ningún cliente.',
    noClients: 'Aún no hay clientes en este dispositivo.',
    shown: 'Mostrando {n} de {total}',
    more: 'Ver más',
    new: 'Nuevo cliente',
    kind: 'Tipo',
    name: 'Nombre',
    phone: 'Teléfono',
    email: 'Correo',
    employer: 'Empresa',
    none: 'Ninguna',
    create: 'Crear',
    anyway: 'Crear de todos modos',
    duplicate: 'Ya hay un cliente con este teléfono o correo:',
    cancel: 'Cancelar',
    nameRequired: 'Escribe un nombre.',
    badPhone: 'Escribe un teléfono, p. ej. +34 612 345 678.',
    badEmail: 'Escribe un correo, p. ej. ana@ejemplo.com.',
    exportAll: 'Todos los clientes que puedes ver.',
    exportMine: 'Los clientes de los que eres responsable.',
    exportNamed: 'Clientes cuyo nombre empieza por «{q}».',
  },
})

/** A company or a contact as the list shows it and the search looks into it. */
interface Row {
  kind: ClientKind
  id: string
  name: string
  sub: string
  owner_id: string
  company_id: string | null
  emails: string[]
  /** The first is the one to call, as `phoneOf` picks it. */
  phones: string[]
  /** A company's domain and city. */
  place: string[]
}

const TABS = ['recent', 'mine', 'all'] as const
type Tab = (typeof TABS)[number]
const PAGE = 200
const SEARCH_LIMIT = 50

async function clients() {
  const [companies, contacts, recent] = await Promise.all([
    db.company.toArray(),
    db.contact.toArray(),
    db.getMeta<{ kind: ClientKind; id: string }[]>('recent'),
  ])
  const companyName = new Map(companies.map((company) => [company.id, company.name]))
  const rows: Row[] = [
    ...companies.map((company) => ({
      kind: 'company' as const,
      id: company.id,
      name: company.name,
      sub: [m('company'), company.city, company.industry].filter(Boolean).join(' · '),
      owner_id: company.owner_id,
      company_id: company.id,
      emails: [],
      phones: company.phone ? [company.phone] : [],
      place: [company.domain, company.city].filter((text): text is string => Boolean(text)),
    })),
    ...contacts.map((contact) => ({
      kind: 'contact' as const,
      id: contact.id,
      name: contact.name,
      sub: [m('contact'), contact.company_id && companyName.get(contact.company_id), contact.title]
        .filter(Boolean)
        .join(' · '),
      owner_id: contact.owner_id,
      company_id: contact.company_id,
      emails: contact.emails,
      phones: contact.phones,
      place: [],
    })),
  ]
  const collator = new Intl.Collator(locale())
  rows.sort((a, b) => collator.compare(a.name, b.name))
  const byId = new Map(rows.map((row) => [row.id, row]))
  return {
    rows,
    companies: companies.sort((a, b) => collator.compare(a.name, b.name)),
    recent: (recent ?? []).flatMap((r) => byId.get(r.id) ?? []),
  }
}

function ClientItem({ row }: { row: Row }) {
  return (
    <li class="item" data-testid="client-row" data-kind={row.kind}>
      <a class="grow item" href={clientHref(row.kind, row.id)}>
        <span class="grow">
          <span class="title">{row.name}</span>
          <span class="sub">{row.sub}</span>
        </span>
      </a>
      {row.phones[0] && (
        <CallLink
          phone={row.phones[0]}
          target={{ name: row.name, company_id: row.company_id, contact_id: row.kind === 'contact' ? row.id : null }}
        />
      )}
    </li>
  )
}

function ClientList({ rows, empty }: { rows: Row[]; empty?: string }) {
  if (!rows.length) return empty ? <p class="empty">{empty}</p> : null
  return (
    <ul class="list card">
      {rows.map((row) => (
        <ClientItem key={row.id} row={row} />
      ))}
    </ul>
  )
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/
// The server reformats any phone to E.164; this only catches what cannot be one (letters, too few digits), which
// it would refuse after the client was shown as created.
const PHONE = /^\+?[\d\s().-]{6,}$/

/** A phone's last nine digits: how "612 345 678" and the stored "+34612345678" are told to be the same number. */
const phoneTail = (phone: string) => phone.replace(/\D/g, '').slice(-9)

type Problems = Partial<Record<'name' | 'phone' | 'email', string>>

function NewClient(props: { rows: Row[]; companies: Company[]; onCancel: () => void }) {
  const { route } = useLocation()
  const [kind, setKind] = useState<ClientKind>('company')
  const [name, setName] = useState('')
  const [phone, setPhone] = useState('')
  const [email, setEmail] = useState('')
  const [companyId, setCompanyId] = useState('')
  const [problems, setProblems] = useState<Problems>({})
  // The server refuses a client whose phone or e-mail another has, unless told to go ahead; the device warns
  // first about the ones it knows, so a new client does not vanish at the next sync.
  const [twin, setTwin] = useState<Row | null>(null)
  useEffect(() => setTwin(null), [kind, phone, email])

  async function create(event: Event) {
    event.preventDefault()
    const found: Problems = {}
    if (!name.trim()) found.name = m('nameRequired')
    if (phone.trim() && !PHONE.test(phone.trim())) found.phone = m('badPhone')
    if (kind === 'contact' && email.trim() && !EMAIL.test(email.trim())) found.email = m('badEmail')
    setProblems(found)
    const first = (['name', 'phone', 'email'] as const).find((field) => found[field])
    if (first) {
      document.getElementById(`new-${first}`)?.focus()
      return
    }
    const tel = phone.trim() && phoneTail(phone)
    const mail = kind === 'contact' && email.trim().toLowerCase()
    const match = props.rows.find(
      (row) =>
        row.kind === kind &&
        ((tel && row.phones.some((p) => phoneTail(p) === tel)) ||
          (mail && row.emails.some((e) => e.toLowerCase() === mail))),
    )
    if (match && !twin) {
      setTwin(match)
      return
    }
    const id = newId()
    const confirm_duplicate = Boolean(twin)
    if (kind === 'company')
      await mutate('company.create', { id, name: name.trim(), phone: phone.trim() || null, confirm_duplicate })
    else
      await mutate('contact.create', {
        id,
        name: name.trim(),
        phones: phone.trim() ? [phone.trim()] : [],
        emails: email.trim() ? [email.trim()] : [],
        company_id: companyId || null,
        confirm_duplicate,
      })
    route(clientHref(kind, id))
  }

  const invalid = (field: keyof Problems) => ({
    id: `new-${field}`,
    'aria-invalid': Boolean(problems[field]),
    'aria-describedby': problems[field] ? `new-${field}-error` : undefined,
  })
  const problem = (field: keyof Problems) =>
    problems[field] && (
      <p id={`new-${field}-error`} role="alert" class="danger-text">
        {problems[field]}
      </p>
    )

  return (
    <form class="card new-client" aria-labelledby="new-title" onSubmit={create} noValidate data-testid="new-client">
      <h2 id="new-title">{m('new')}</h2>
      <fieldset class="chips">
        <legend>{m('kind')}</legend>
        {(['company', 'contact'] as const).map((option) => (
          <button type="button" class="chip" aria-pressed={kind === option} onClick={() => setKind(option)}>
            {m(option)}
          </button>
        ))}
      </fieldset>
      <label class="field">
        <span>{m('name')}</span>
        <input
          {...invalid('name')}
          value={name}
          onInput={(e) => setName(e.currentTarget.value)}
          required
          autocomplete="off"
        />
      </label>
      {problem('name')}
      <label class="field">
        <span>{m('phone')}</span>
        <input
          {...invalid('phone')}
          type="tel"
          value={phone}
          onInput={(e) => setPhone(e.currentTarget.value)}
          autocomplete="off"
        />
      </label>
      {problem('phone')}
      {kind === 'contact' && (
        <>
          <label class="field">
            <span>{m('email')}</span>
            <input
              {...invalid('email')}
              type="email"
              value={email}
              onInput={(e) => setEmail(e.currentTarget.value)}
              autocomplete="off"
            />
          </label>
          {problem('email')}
          <label class="field">
            <span>{m('employer')}</span>
            <select value={companyId} onChange={(e) => setCompanyId(e.currentTarget.value)}>
              <option value="">{m('none')}</option>
              {props.companies.map((company) => (
                <option value={company.id}>{company.name}</option>
              ))}
            </select>
          </label>
        </>
      )}
      {twin && (
        <p role="alert" class="warn">
          {m('duplicate')} <a href={clientHref(twin.kind, twin.id)}>{twin.name}</a>
        </p>
      )}
      <div class="actions">
        <button type="button" onClick={props.onCancel}>
          {m('cancel')}
        </button>
        <button type="submit" class="primary">
          {m(twin ? 'anyway' : 'create')}
        </button>
      </div>
    </form>
  )
}

export function Clients() {
  const data = useLive(clients)
  const me = useSession()?.user.id
  const [query, setQuery] = useState('')
  const [tab, setTab] = useState<Tab>('recent')
  const [shown, setShown] = useState(PAGE)
  const [creating, setCreating] = useState(false)

  const fuse = useMemo(
    () =>
      data &&
      new Fuse(data.rows, {
        keys: [{ name: 'name', weight: 2 }, 'emails', 'phones', 'place'],
        threshold: 0.35,
        ignoreLocation: true,
        ignoreDiacritics: true,
      }),
    [data],
  )
  const q = query.trim()
  const found = useMemo(() => (fuse && q ? fuse.search(q, { limit: SEARCH_LIMIT }).map((r) => r.item) : []), [fuse, q])

  const lists: Record<Tab, Row[]> = {
    recent: data?.recent ?? [],
    mine: data?.rows.filter((row) => row.owner_id === me) ?? [],
    all: data?.rows ?? [],
  }
  const rows = lists[tab]
  // The export takes the list's filters as the server reads them: names starting with the search (the device's
  // search is fuzzier), and the user's own clients on "Mine" ("Recent" lives on the device: every client).
  const exportFilters = q ? { q } : { owner_id: tab === 'mine' ? 'me' : undefined }

  const pick = (next: Tab) => {
    setTab(next)
    setShown(PAGE)
  }
  // Arrow keys move between the tabs, as in any tab list.
  const onTabKey = (event: KeyboardEvent) => {
    const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0
    if (!step) return
    const next = TABS[(TABS.indexOf(tab) + step + TABS.length) % TABS.length]
    pick(next)
    document.getElementById(`tab-${next}`)?.focus()
  }

  return (
    <div class="screen" data-testid="clients">
      <div class="heading-row">
        <h1>{m('title')}</h1>
        <button type="button" class="primary" aria-expanded={creating} onClick={() => setCreating(!creating)}>
          {m('new')}
        </button>
      </div>
      {creating && data && (
        <NewClient rows={data.rows} companies={data.companies} onCancel={() => setCreating(false)} />
      )}
      <ExportMenu
        entities={['companies', 'contacts']}
        filters={exportFilters}
        scope={q ? m('exportNamed', { q }) : tab === 'mine' ? m('exportMine') : m('exportAll')}
      />
      <label class="search">
        <span class="visually-hidden">{m('search')}</span>
        <input
          type="search"
          value={query}
          placeholder={m('placeholder')}
          onInput={(e) => setQuery(e.currentTarget.value)}
          autocomplete="off"
          enterkeyhint="search"
        />
      </label>
      <p role="status" class="muted">
        {q && data && (found.length ? m('results', { n: found.length }) : m('noMatch', { q }))}
      </p>
      {q ? (
        <ClientList rows={found} />
      ) : (
        <>
          <div class="segmented" role="tablist" aria-label={m('tabs')} onKeyDown={onTabKey}>
            {TABS.map((key) => (
              <button
                type="button"
                role="tab"
                id={`tab-${key}`}
                aria-selected={tab === key}
                aria-controls="clients-panel"
                tabIndex={tab === key ? 0 : -1}
                onClick={() => pick(key)}
              >
                {m(key)}
              </button>
            ))}
          </div>
          <div role="tabpanel" id="clients-panel" aria-labelledby={`tab-${tab}`}>
            {data && (
              <>
                <ClientList
                  rows={rows.slice(0, shown)}
                  empty={m(tab === 'recent' ? 'noRecent' : tab === 'mine' ? 'noMine' : 'noClients')}
                />
                {rows.length > shown && (
                  <>
                    <p class="muted">{m('shown', { n: fmt.number(shown), total: fmt.number(rows.length) })}</p>
                    <button type="button" onClick={() => setShown(shown + PAGE)}>
                      {m('more')}
                    </button>
                  </>
                )}
              </>
            )}
          </div>
        </>
      )}
    </div>
  )
}
