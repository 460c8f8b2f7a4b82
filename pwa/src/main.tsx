import { render } from 'preact'
import { App, updateReady } from './app'
import './styles.css'

render(<App />, document.getElementById('app') as HTMLElement)

if ('serviceWorker' in navigator && import.meta.env.PROD) {
  const workers = navigator.serviceWorker
  // The worker skips waiting, so a new deployment takes over by itself. The first takeover is the first install
  // (the page was not controlled yet); any later one is a new version, which the page offers to reload onto.
  let controlled = Boolean(workers.controller)
  workers.addEventListener('controllerchange', () => {
    if (controlled) updateReady.dispatchEvent(new Event('ready'))
    controlled = true
  })
  void workers.register('/sw.js', { type: 'module' }).then((registration) => {
    // Phones keep an app open for days: look for a new version whenever it is shown again.
    document.addEventListener(
      'visibilitychange',
      () => document.visibilityState === 'visible' && void registration.update(),
    )
  })
}
