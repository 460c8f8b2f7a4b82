// The API client: openapi-fetch over the generated types, with the access token added and refreshed.
import createClient from 'openapi-fetch'
import type { components, paths } from './schema'

export type Schemas = components['schemas']
export type Company = Schemas['CompanyRead']
export type Contact = Schemas['ContactRead']
export type Deal = Schemas['DealRead']
export type Activity = Schemas['ActivityRead']
export type User = Schemas['UserRead']
export type Team = Schemas['TeamRead']
export type Pipeline = Schemas['PipelineSummary']
export type Stage = Schemas['StageRead']
export type LostReason = Schemas['LostReasonRead']
export type Product = Schemas['ProductRead']
export type CustomField = Schemas['CustomFieldRead']
export type Mutation = Schemas['Mutation']
export type MutationName = Mutation['name']
export type MutationResult = Schemas['MutationResult']
export type PullPage = Schemas['PullPage']
export type FeedItem = Schemas['FeedItem']
export type Me = Schemas['Me']
export type TokenPair = Schemas['TokenPair']

export const API = '/api/v1'
// The service worker has its own location, unit tests under Node none.
export const ORIGIN = globalThis.location?.origin ?? 'http://localhost'

/** Where tokens live and how they are renewed; auth.ts provides it (kept apart so tests can give their own). */
export interface TokenStore {
  access(): Promise<string | null>
  /** A fresh access token after a 401, or null when the session is over (signed out elsewhere, expired);
   *  throws TransportError when the server cannot be asked now. */
  renew(rejected: string): Promise<string | null>
}

let tokens: TokenStore | null = null
export function useTokens(store: TokenStore): void {
  tokens = store
}

/** The network failed (offline, DNS, reset): the caller keeps its work and retries later. */
export class TransportError extends Error {}
/** The session is over: the user has to sign in again (their outbox is kept). */
export class SignedOut extends Error {}

async function send(request: Request, token: string | null): Promise<Response> {
  const sent = request.clone()
  if (token) sent.headers.set('authorization', `Bearer ${token}`)
  try {
    return await fetch(sent)
  } catch (error) {
    throw new TransportError(String(error))
  }
}

/** fetch with the bearer token; one renewal and retry on 401. */
export async function authFetch(request: Request): Promise<Response> {
  const token = (await tokens?.access()) ?? null
  const response = await send(request, token)
  if (response.status !== 401 || !token || !tokens) return response
  const renewed = await tokens.renew(token)
  if (!renewed) throw new SignedOut()
  return send(request, renewed)
}

export const api = createClient<paths>({ baseUrl: ORIGIN, fetch: authFetch })

/** The access token, for a request fetch cannot make (an upload with progress goes through XMLHttpRequest). */
export async function accessToken(): Promise<string | null> {
  return (await tokens?.access()) ?? null
}

/** A fresh access token after `rejected` got a 401; SignedOut when the session is over. */
export async function renewToken(rejected: string): Promise<string> {
  const renewed = tokens ? await tokens.renew(rejected) : null
  if (!renewed) throw new SignedOut()
  return renewed
}

/** The problem+json of a failed call, or a generic one for a bare status. */
export function problemText(error: unknown): string {
  if (error && typeof error === 'object' && 'detail' in error && typeof error.detail === 'string') return error.detail
  if (error && typeof error === 'object' && 'title' in error && typeof error.title === 'string') return error.title
  return String(error)
}
