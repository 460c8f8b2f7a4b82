// The app shell: the header with the sync badge, the routes (each screen loaded on first use), the bottom
// navigation, the "how did the call go?" sheet and the update prompt.
import { ErrorBoundary, LocationProvider, Route, Router, lazy, useLocation } from 'preact-iso'
import { useEffect, useState } from 'preact/hooks'
import type { Schemas } from './api/client'
import { db } from './db/db'
import { useLive, useOnline, useSession, useSyncStatus } from './hooks'
import { defineMessages, lang as currentLang, plural, type Params } from './i18n'
import { SignIn } from './screens/signin'
import { Today } from './screens/today'
import { CallSheet, usePendingCall } from './components/call-sheet'
import { startSync } from './sync/triggers'

const Clients = lazy(() => import('./screens/clients').then((m) => m.Clients))
const ClientCard = lazy(() => import('./screens/client-card').then((m) => m.ClientCard))
const Deals = lazy(() => import('./screens/deals').then((m) => m.Deals))
const DealView = lazy(() => import('./screens/deal').then((m) => m.DealView))
const Feed = lazy(() => import('./screens/feed').then((m) => m.Feed))
const DealStory = lazy(() => import('./screens/story').then((m) => m.DealStory))
const WinStory = lazy(() => import('./screens/story').then((m) => m.WinStory))
const Learn = lazy(() => import('./screens/learn').then((m) => m.Learn))
const Team = lazy(() => import('./screens/team').then((m) => m.Team))
const SyncScreen = lazy(() => import('./screens/sync').then((m) => m.SyncScreen))
const Imports = lazy(() => import('./screens/imports').then((m) => m.Imports))

export const updateReady = new EventTarget()

const m = defineMessages({
  en: {
    pending: (p: Params) => plural(Number(p.n), { one: '{n} change pending', other: '{n} changes pending' }),
    today: 'Today',
    clients: 'Clients',
    deals: 'Deals',
    feed: 'Feed',
    learn: 'Learn',
    team: 'Team',
    imports: 'Import',
    sync: 'Sync',
    main: 'Main',
    offline: 'Offline',
    online: 'Online',
    syncing: 'Syncing…',
    signedOut: 'Sign in again to sync',
    error: 'Sync failed, retrying',
    conflicts: (p: Params) =>
      plural(Number(p.n), { one: '{n} needs your attention', other: '{n} need your attention' }),
    update: 'A new version of Fieldbook is ready.',
    reload: 'Reload',
    skip: 'Skip to content',
  },
  es: {
    pending: (p: Params) => plural(Number(p.n), { one: '{n} cambio pendiente', other: '{n} cambios pendientes' }),
    today: 'Hoy',
    clients: 'Clientes',
    deals: 'Negocios',
    feed: 'Actividad',
    learn: 'Aprender',
    team: 'Equipo',
    imports: 'Importar',
    sync: 'Sincronizar',
    main: 'Principal',
    offline: 'Sin conexión',
    online: 'En línea',
    syncing: 'Sincronizando…',
    signedOut: 'Vuelve a iniciar sesión para sincronizar',
    error: 'Error al sincronizar, reintentando',
    conflicts: (p: Params) =>
      plural(Number(p.n), { one: '{n} requiere tu atención', other: '{n} requieren tu atención' }),
    update: 'Hay una nueva versión de Fieldbook.',
    reload: 'Recargar',
    skip: 'Saltar al contenido',
  },
})

/** Online or not, what is waiting to be sent and what needs the user; a tap opens the Sync screen. */
function SyncBadge() {
  const online = useOnline()
  const status = useSyncStatus()
  const pending = useLive(() => db.outbox.count()) ?? 0
  const issues = useLive(() => db.issue.count()) ?? 0
  const state = !online || status.state === 'offline' ? 'offline' : status.state
  const label =
    state === 'offline'
      ? m('offline')
      : state === 'syncing'
        ? m('syncing')
        : state === 'signed-out'
          ? m('signedOut')
          : state === 'error'
            ? m('error')
            : m('online')
  return (
    <a
      href="/sync"
      class={`badge badge-${state}`}
      data-testid="sync-badge"
      data-pending={pending}
      data-issues={issues}
      data-last-sync={status.lastSync ?? ''}
    >
      <span class="dot" aria-hidden="true" />
      <span>{label}</span>
      {pending > 0 && <span class="count">{m('pending', { n: pending })}</span>}
      {issues > 0 && <span class="count warn">{m('conflicts', { n: issues })}</span>}
    </a>
  )
}

type Role = Schemas['Role']
const SELLERS: readonly Role[] = ['admin', 'manager', 'rep']
const MANAGERS: readonly Role[] = ['admin', 'manager']
const ADMINS: readonly Role[] = ['admin']

// Learn is for everyone who sells, Team for those who lead them, Import for admins; the rest for everyone.
interface Tab {
  href: string
  key: 'today' | 'clients' | 'deals' | 'feed' | 'learn' | 'team' | 'imports' | 'sync'
  icon: string
  /** Who sees it (everyone when not given). */
  roles?: readonly Role[]
}
const TABS: readonly Tab[] = [
  { href: '/', key: 'today', icon: 'M4 5h16v15H4zM4 9h16M9 3v4M15 3v4' },
  {
    href: '/clients',
    key: 'clients',
    icon: 'M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM2 21c0-4 3-7 7-7s7 3 7 7M17 11a3 3 0 1 0 0-6M22 21c0-3-2-5-5-6',
  },
  { href: '/deals', key: 'deals', icon: 'M3 6h18v4H3zM5 10v10h14V10M10 14h4' },
  { href: '/feed', key: 'feed', icon: 'M4 6h16M4 12h16M4 18h10' },
  {
    href: '/learn',
    key: 'learn',
    icon: 'M7 4h10v5a5 5 0 0 1-10 0zM7 6H4a3 3 0 0 0 3 4M17 6h3a3 3 0 0 1-3 4M12 14v4M8 21h8',
    roles: SELLERS,
  },
  { href: '/team', key: 'team', icon: 'M4 20h16M6 16v-4M11 16V6M16 16v-7', roles: MANAGERS },
  { href: '/imports', key: 'imports', icon: 'M12 15V4M7 9l5-5 5 5M4 15v5h16v-5', roles: ADMINS },
  { href: '/sync', key: 'sync', icon: 'M4 12a8 8 0 0 1 14-5l2 2M20 12a8 8 0 0 1-14 5l-2-2M20 4v5h-5M4 20v-5h5' },
]

function Nav() {
  const { path } = useLocation()
  const role = useSession()?.user.role
  const tabs = TABS.filter((tab) => !tab.roles || (role && tab.roles.includes(role)))
  return (
    <nav class={`tabs tabs-${tabs.length}`} aria-label={m('main')}>
      {tabs.map((tab) => {
        const active = tab.href === '/' ? path === '/' : path.startsWith(tab.href)
        return (
          <a href={tab.href} aria-current={active ? 'page' : undefined} class={active ? 'active' : ''}>
            <svg viewBox="0 0 24 24" aria-hidden="true">
              <path d={tab.icon} />
            </svg>
            <span>{m(tab.key)}</span>
          </a>
        )
      })}
    </nav>
  )
}

function UpdatePrompt() {
  const [ready, setReady] = useState(false)
  useEffect(() => {
    const show = () => setReady(true)
    updateReady.addEventListener('ready', show)
    return () => updateReady.removeEventListener('ready', show)
  }, [])
  if (!ready) return null
  return (
    <div class="toast" role="status">
      <span>{m('update')}</span>
      <button type="button" class="primary" onClick={() => location.reload()}>
        {m('reload')}
      </button>
    </div>
  )
}

function Shell() {
  const call = usePendingCall()
  useEffect(() => startSync(), [])
  return (
    <>
      <a class="skip" href="#main">
        {m('skip')}
      </a>
      <header class="top">
        <a href="/" class="brand">
          Fieldbook
        </a>
        <SyncBadge />
      </header>
      <main id="main">
        <ErrorBoundary>
          <Router>
            <Route path="/" component={Today} />
            <Route path="/clients" component={Clients} />
            <Route path="/clients/:kind/:id" component={ClientCard} />
            <Route path="/deals" component={Deals} />
            <Route path="/deals/:id" component={DealView} />
            <Route path="/deals/:id/story" component={DealStory} />
            <Route path="/feed" component={Feed} />
            <Route path="/learn" component={Learn} />
            <Route path="/learn/wins/:id" component={WinStory} />
            <Route path="/team" component={Team} />
            <Route path="/imports" component={Imports} />
            <Route path="/sync" component={SyncScreen} />
            <Route default component={Today} />
          </Router>
        </ErrorBoundary>
      </main>
      <Nav />
      {call && <CallSheet call={call} />}
      <UpdatePrompt />
    </>
  )
}

export function App() {
  const session = useSession()
  const [lang, setLang] = useState(currentLang)
  useEffect(() => {
    document.documentElement.lang = lang
    const changed = () => setLang(currentLang)
    window.addEventListener('languagechange', changed)
    return () => window.removeEventListener('languagechange', changed)
  }, [lang])
  if (session === undefined) return null
  return (
    <LocationProvider key={lang}>
      {session && session.access_token ? <Shell /> : <SignIn expired={Boolean(session)} />}
    </LocationProvider>
  )
}
