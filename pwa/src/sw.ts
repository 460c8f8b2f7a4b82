/// <reference lib="webworker" />
// The service worker: the app shell precached (works offline from the first visit on), client-side routes served
// from it, and Background Sync pushing the outbox when the browser finds the network again.
import { clientsClaim } from 'workbox-core'
import { cleanupOutdatedCaches, createHandlerBoundToURL, precacheAndRoute } from 'workbox-precaching'
import { NavigationRoute, registerRoute } from 'workbox-routing'
import './auth'
import { push } from './sync/engine'

declare const self: ServiceWorkerGlobalScope

self.skipWaiting()
clientsClaim()
precacheAndRoute(self.__WB_MANIFEST)
cleanupOutdatedCaches()
registerRoute(
  new NavigationRoute(createHandlerBoundToURL('/index.html'), {
    denylist: [/^\/api\//, /^\/docs/, /^\/(healthz|readyz)$/],
  }),
)

interface SyncEvent extends ExtendableEvent {
  tag: string
}

self.addEventListener('sync', (event) => {
  const sync = event as SyncEvent
  if (sync.tag !== 'fieldbook-outbox') return
  sync.waitUntil(
    (async () => {
      // An open window syncs (push and pull) itself; with none, the worker pushes so the work reaches the server.
      const windows = await self.clients.matchAll({ type: 'window' })
      if (windows.length) for (const client of windows) client.postMessage('sync')
      else await push()
    })(),
  )
})
