// When the app syncs: at start, back online, shown again, every minute while shown, soon after a local change,
// on a server poke, and through Background Sync (the service worker) where the browser has it.
import { EventSourceParserStream } from 'eventsource-parser/stream'
import { API, authFetch } from '../api/client'
import { changed } from '../db/local'
import { Engine } from './engine'

export const engine = new Engine()

const EVERY_MS = 60_000
const AFTER_CHANGE_MS = 300

/** Listens to /sync/events (fetch, because EventSource cannot send the bearer token); reconnects after a drop. */
async function listenForPokes(signal: AbortSignal): Promise<void> {
  for (let failures = 0, listened = false; !signal.aborted; failures++) {
    try {
      const response = await authFetch(new Request(`${API}/sync/events`, { signal }))
      if (response.ok && response.body) {
        failures = 0
        // Pokes sent while the stream was down are lost: catch up once it is back.
        if (listened) void engine.sync()
        listened = true
        const events = response.body
          .pipeThrough(new TextDecoderStream())
          .pipeThrough(new EventSourceParserStream())
          .getReader()
        for (let next = await events.read(); !next.done; next = await events.read())
          if (next.value.event === 'poke') void engine.sync()
      }
    } catch {
      // Offline or signed out: wait and try again; the timer and `online` keep syncing meanwhile.
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(60_000, 2000 * 2 ** Math.min(failures, 5))))
  }
}

async function askForBackgroundSync(): Promise<void> {
  const registration = await navigator.serviceWorker?.getRegistration()
  const sync = (
    registration as (ServiceWorkerRegistration & { sync?: { register(tag: string): Promise<void> } }) | undefined
  )?.sync
  await sync?.register('fieldbook-outbox').catch(() => undefined)
}

export function startSync(): () => void {
  const stop = new AbortController()
  const { signal } = stop
  let soon: ReturnType<typeof setTimeout> | undefined
  const now = () => void engine.sync()
  window.addEventListener('online', now, { signal })
  document.addEventListener('visibilitychange', () => document.visibilityState === 'visible' && now(), { signal })
  changed.addEventListener(
    'queued',
    () => {
      clearTimeout(soon)
      soon = setTimeout(now, AFTER_CHANGE_MS)
      if (!navigator.onLine) void askForBackgroundSync()
    },
    { signal },
  )
  navigator.serviceWorker?.addEventListener('message', (event) => event.data === 'sync' && now(), { signal })
  const timer = setInterval(() => document.visibilityState === 'visible' && now(), EVERY_MS)
  signal.addEventListener('abort', () => clearInterval(timer))
  void navigator.storage?.persist?.()
  void listenForPokes(signal)
  now()
  return () => stop.abort()
}
