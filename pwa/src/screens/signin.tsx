import { useState } from 'preact/hooks'
import { SignInError, UnsyncedChanges, signIn } from '../auth'
import { defineMessages, LANGS, lang, plural, setLang, type Params } from '../i18n'

const m = defineMessages({
  en: {
    title: 'Sign in to Fieldbook',
    again: 'Your session ended. Sign in again: your unsynced changes are kept on this device.',
    email: 'E-mail',
    password: 'Password',
    submit: 'Sign in',
    wrong: 'That e-mail and password do not match.',
    throttled: 'Too many attempts. Wait a few minutes and try again.',
    offline: 'You are offline. Signing in needs a connection once; after that Fieldbook works offline.',
    failed: 'Could not sign in (error {status}).',
    language: 'Language',
    unsynced: (p: Params) =>
      plural(Number(p.n), {
        one: `This device holds {n} change by ${p.owner} that has not reached the server. Sign in as ${p.owner} to send it, or sign in anyway and delete it.`,
        other: `This device holds {n} changes by ${p.owner} that have not reached the server. Sign in as ${p.owner} to send them, or sign in anyway and delete them.`,
      }),
    discard: 'Sign in anyway and delete them',
  },
  es: {
    title: 'Inicia sesión en Fieldbook',
    again: 'Tu sesión terminó. Vuelve a iniciar sesión: tus cambios sin sincronizar se conservan en este dispositivo.',
    email: 'Correo electrónico',
    password: 'Contraseña',
    submit: 'Iniciar sesión',
    wrong: 'El correo y la contraseña no coinciden.',
    throttled: 'Demasiados intentos. Espera unos minutos y vuelve a intentarlo.',
    offline: 'No hay conexión. Iniciar sesión necesita conexión una vez; después Fieldbook funciona sin conexión.',
    failed: 'No se pudo iniciar sesión (error {status}).',
    language: 'Idioma',
    unsynced: (p: Params) =>
      plural(Number(p.n), {
        one: `Este dispositivo tiene {n} cambio de ${p.owner} que no ha llegado al servidor. Inicia sesión como ${p.owner} para enviarlo, o entra igualmente y bórralo.`,
        other: `Este dispositivo tiene {n} cambios de ${p.owner} que no han llegado al servidor. Inicia sesión como ${p.owner} para enviarlos, o entra igualmente y bórralos.`,
      }),
    discard: 'Entrar igualmente y borrarlos',
  },
})

export function SignIn({ expired }: { expired: boolean }) {
  const [email, setEmail] = useState('')
  const [password, setPassword] = useState('')
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const [unsynced, setUnsynced] = useState<UnsyncedChanges | null>(null)

  async function submit(event: Event, discard = false) {
    event.preventDefault()
    setBusy(true)
    setError(null)
    setUnsynced(null)
    try {
      await signIn(email.trim(), password, discard)
    } catch (e) {
      if (e instanceof UnsyncedChanges) {
        setUnsynced(e)
        return
      }
      const status = e instanceof SignInError ? e.status : 0
      setError(
        status === 401 ? m('wrong') : status === 429 ? m('throttled') : status ? m('failed', { status }) : m('offline'),
      )
    } finally {
      setBusy(false)
    }
  }

  return (
    <main id="main" class="signin">
      <form class="card" onSubmit={submit}>
        <h1>{m('title')}</h1>
        {expired && <p class="warn">{m('again')}</p>}
        <label class="field">
          <span>{m('email')}</span>
          <input
            type="email"
            name="email"
            autocomplete="username"
            required
            value={email}
            onInput={(e) => setEmail(e.currentTarget.value)}
          />
        </label>
        <label class="field">
          <span>{m('password')}</span>
          <input
            type="password"
            name="password"
            autocomplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        {error && (
          <p class="danger-text" role="alert">
            {error}
          </p>
        )}
        {unsynced && (
          <div role="alert" class="card">
            <p class="warn">{m('unsynced', { n: unsynced.count, owner: unsynced.owner })}</p>
            <button type="button" class="danger" onClick={(e) => void submit(e, true)}>
              {m('discard')}
            </button>
          </div>
        )}
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            {m('submit')}
          </button>
        </div>
        <label class="field">
          <span>{m('language')}</span>
          <select value={lang} onChange={(e) => setLang(e.currentTarget.value as (typeof LANGS)[number])}>
            <option value="en">English</option>
            <option value="es">Español</option>
          </select>
        </label>
      </form>
    </main>
  )
}
