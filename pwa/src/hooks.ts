// Screens read IndexedDB through live queries: they re-render whenever the data they read changes (a pull, a
// local change, another tab).
import { liveQuery } from 'dexie'
import { useEffect, useState } from 'preact/hooks'
import { db, type CachedPage } from './db/db'
import { TransportError } from './api/client'
import type { Session } from './auth'
import { engine } from './sync/triggers'
import type { Status } from './sync/engine'

export function useLive<T>(query: () => Promise<T> | T, deps: unknown[] = []): T | undefined {
  const [value, setValue] = useState<T | undefined>(undefined)
  useEffect(() => {
    const subscription = liveQuery(query).subscribe({ next: setValue, error: (e) => console.error(e) })
    return () => subscription.unsubscribe()
  }, deps)
  return value
}

export function useSession(): Session | null | undefined {
  const value = useLive(async () => (await db.getMeta<Session>('session')) ?? null)
  return value
}

export function useSyncStatus(): Status {
  const [status, setStatus] = useState(engine.status)
  useEffect(() => {
    const update = () => setStatus(engine.status)
    engine.addEventListener('status', update)
    return () => engine.removeEventListener('status', update)
  }, [])
  return status
}

export function useOnline(): boolean {
  const [online, setOnline] = useState(navigator.onLine)
  useEffect(() => {
    const update = () => setOnline(navigator.onLine)
    window.addEventListener('online', update)
    window.addEventListener('offline', update)
    return () => {
      window.removeEventListener('online', update)
      window.removeEventListener('offline', update)
    }
  }, [])
  return online
}

export type FetchState = 'idle' | 'loading' | 'offline' | 'error'

/** Fetches whenever `key` or `deps` change or the device comes online, and keeps what came in `db.page` under
 *  `key`. The screen shows that copy (a live query), so it looks the same online and off, only older. */
export function useKept(
  key: string,
  fetch: () => Promise<Pick<CachedPage, 'items' | 'data'>>,
  online: boolean,
  deps: unknown[] = [],
): { state: FetchState; error: string } {
  const [state, setState] = useState<FetchState>('idle')
  const [error, setError] = useState('')
  useEffect(() => {
    if (!online) return setState('offline')
    let shown = true
    setState('loading')
    fetch()
      .then(async (fetched) => {
        await db.page.put({ key, ...fetched, at: new Date().toISOString() })
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
  }, [key, online, ...deps])
  return { state, error }
}
