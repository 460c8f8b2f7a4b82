// Files to and from the server with the bearer token: an upload through XMLHttpRequest (fetch reports no upload
// progress) and a download read as a blob and saved through a link (a plain link could not send the token).
import { accessToken, authFetch, problemText, renewToken, TransportError } from './client'

export interface Answer {
  status: number
  /** The parsed JSON body (a problem+json on failure), or null when there is none. */
  body: unknown
}

/** How far an upload is: bytes sent of the total. */
export type Progress = (sent: number, total: number) => void

function post(url: string, form: FormData, token: string | null, progress: Progress, signal?: AbortSignal) {
  return new Promise<Answer>((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('POST', url)
    if (token) xhr.setRequestHeader('authorization', `Bearer ${token}`)
    xhr.upload.onprogress = (event) => event.lengthComputable && progress(event.loaded, event.total)
    xhr.onload = () => {
      let body: unknown = null
      try {
        body = xhr.responseText ? JSON.parse(xhr.responseText) : null
      } catch {
        body = { detail: xhr.statusText || String(xhr.status) }
      }
      resolve({ status: xhr.status, body })
    }
    xhr.onerror = () => reject(new TransportError('upload failed'))
    xhr.onabort = () => reject(new DOMException('The upload was cancelled.', 'AbortError'))
    signal?.addEventListener('abort', () => xhr.abort(), { once: true })
    xhr.send(form)
  })
}

/** POSTs a multipart form with the session's token (renewed once on a 401), reporting the upload's progress. */
export async function upload(url: string, form: FormData, progress: Progress, signal?: AbortSignal): Promise<Answer> {
  const token = await accessToken()
  const answer = await post(url, form, token, progress, signal)
  if (answer.status !== 401 || !token) return answer
  return post(url, form, await renewToken(token), progress, signal)
}

/** The file name a Content-Disposition header gives: `filename*` (RFC 5987, UTF-8) first, then `filename`. */
export function filenameOf(disposition: string | null, fallback: string): string {
  if (!disposition) return fallback
  const extended = /filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i.exec(disposition)
  if (extended) {
    try {
      return decodeURIComponent(extended[2].trim())
    } catch {
      // A malformed encoding: the plain name below.
    }
  }
  const plain = /filename\s*=\s*("([^"]*)"|[^;]+)/i.exec(disposition)
  const name = (plain?.[2] ?? plain?.[1] ?? '').trim()
  return name || fallback
}

/** Fetches a file with the session's token and saves it under the name the server gives. */
export async function download(url: string | URL, fallback: string): Promise<string> {
  const response = await authFetch(new Request(url))
  if (!response.ok) {
    const problem: unknown = await response.json().catch(() => response.statusText)
    throw new Error(problemText(problem))
  }
  const name = filenameOf(response.headers.get('content-disposition'), fallback)
  const href = URL.createObjectURL(await response.blob())
  const link = document.createElement('a')
  link.href = href
  link.download = name
  link.hidden = true
  document.body.append(link)
  link.click()
  link.remove()
  // The browser has started saving it; the object URL is only needed until then.
  setTimeout(() => URL.revokeObjectURL(href), 30_000)
  return name
}
