import { render } from 'preact'
import { Workbox } from 'workbox-window'
import { App, updateReady } from './app'
import './styles.css'

render(<App />, document.getElementById('app') as HTMLElement)

if ('serviceWorker' in navigator && import.meta.env.PROD) {
  const wb = new Workbox('/sw.js', { type: 'module' })
  // The worker skips waiting, so a new deployment takes over by itself; the page offers to reload onto it.
  wb.addEventListener('controlling', (event) => event.isUpdate && updateReady.dispatchEvent(new Event('ready')))
  void wb.register()
}
