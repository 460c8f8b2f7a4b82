// The outbox (src/db/local.ts): a change is applied to the device's records and queued in one transaction.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { FieldbookDB } from '../src/db/db'
import { changed, mutate, newId, replayOutbox } from '../src/db/local'
import { isRotten } from '../src/db/queries'
import { ME, company, deal, device } from './fake-server'

let store: FieldbookDB

beforeEach(async () => {
  store = await device()
})

afterEach(async () => {
  await store.delete()
})

describe('mutate', () => {
  it('writes the record and its outbox row together', async () => {
    const id = newId()
    let queued = 0
    const count = () => queued++
    changed.addEventListener('queued', count)
    const mutationId = await mutate('company.create', { id, name: 'Acme', city: 'Lyon' }, undefined, store)
    changed.removeEventListener('queued', count)

    const record = await store.company.get(id)
    expect(record).toMatchObject({ id, name: 'Acme', city: 'Lyon', owner_id: ME, version: 0, tags: [], custom: {} })
    const rows = await store.outbox.toArray()
    expect(rows).toEqual([
      {
        id: mutationId,
        name: 'company.create',
        args: { id, name: 'Acme', city: 'Lyon' },
        base_version: null,
        at: expect.any(String),
      },
    ])
    expect(record?.created_at).toBe(rows[0].at)
    expect(queued).toBe(1)
  })

  it('keeps neither the record nor the outbox row when queueing fails after the record was written', async () => {
    const id = newId()
    await store.company.put(company(id, { name: 'Before' }))
    const failQueue = () => {
      throw new Error('disk full')
    }
    store.outbox.hook('creating', failQueue)

    await expect(mutate('company.update', { id, name: 'After' }, 1, store)).rejects.toThrow('disk full')
    await expect(mutate('company.create', { id: newId(), name: 'New' }, undefined, store)).rejects.toThrow('disk full')

    store.outbox.hook('creating').unsubscribe(failQueue)
    expect((await store.company.get(id))?.name).toBe('Before')
    expect(await store.company.count()).toBe(1)
    expect(await store.outbox.count()).toBe(0)
  })

  it('queues nothing when applying the change fails', async () => {
    const first = newId()
    const failWrite = (key: unknown) => {
      if (key === first) throw new Error('refused')
    }
    store.contact.hook('creating', failWrite)

    // A write the store refuses (here a hook) ...
    await expect(mutate('contact.create', { id: first, name: 'Ann' }, undefined, store)).rejects.toThrow('refused')
    // ... or one IndexedDB itself refuses (an object is not a valid key).
    await expect(
      mutate('company.create', { id: {} as unknown as string, name: 'Bad' }, undefined, store),
    ).rejects.toThrow()

    expect(await store.contact.count()).toBe(0)
    expect(await store.company.count()).toBe(0)
    expect(await store.outbox.count()).toBe(0)
  })

  it('rolls back every record a change wrote when one of them fails', async () => {
    const activityId = newId()
    const stepId = newId()
    const failMain = (key: unknown) => {
      if (key === activityId) throw new Error('refused')
    }
    store.activity.hook('creating', failMain)

    await expect(
      mutate(
        'activity.log',
        {
          id: activityId,
          kind: 'call',
          subject: 'Called',
          next_step: { id: stepId, subject: 'Call back', due_at: '2025-02-01T09:00:00Z' },
        },
        undefined,
        store,
      ),
    ).rejects.toThrow('refused')

    // The next step (written first) went with the failed activity.
    expect(await store.activity.count()).toBe(0)
    expect(await store.outbox.count()).toBe(0)
  })

  it('numbers mutations increasingly and never reuses an id once the outbox is emptied', async () => {
    const ids = [
      await mutate('company.create', { id: newId(), name: 'A' }, undefined, store),
      await mutate('company.create', { id: newId(), name: 'B' }, undefined, store),
      await mutate('company.create', { id: newId(), name: 'C' }, undefined, store),
    ]
    expect(ids).toEqual([ids[0], ids[0] + 1, ids[0] + 2])

    // Pushed and dropped (what sync does) ...
    await store.outbox.where('id').belowOrEqual(ids[2]).delete()
    const afterDelete = await mutate('company.create', { id: newId(), name: 'D' }, undefined, store)
    expect(afterDelete).toBeGreaterThan(ids[2])

    // ... or cleared outright.
    await store.outbox.clear()
    const afterClear = await mutate('company.create', { id: newId(), name: 'E' }, undefined, store)
    expect(afterClear).toBeGreaterThan(afterDelete)

    // And across a reopened database (a reload of the app).
    store.close()
    await store.open()
    await store.outbox.clear()
    const afterReopen = await mutate('company.create', { id: newId(), name: 'F' }, undefined, store)
    expect(afterReopen).toBeGreaterThan(afterClear)
  })

  it('sends base_version only as given, and defaults it to null', async () => {
    const id = newId()
    await store.company.put(company(id))
    await mutate('company.update', { id, name: 'X' }, 4, store)
    await mutate('company.update', { id, name: 'Y' }, undefined, store)
    expect((await store.outbox.toArray()).map((row) => row.base_version)).toEqual([4, null])
  })
})

describe('replayOutbox', () => {
  it('shows queued changes again over records put back by a pull, in the order they were made', async () => {
    const id = newId()
    await store.company.put(company(id, { name: 'Server', city: 'Paris' }))
    await mutate('company.update', { id, name: 'First' }, 1, store)
    await mutate('company.update', { id, name: 'Second', city: 'Lyon' }, 1, store)

    await store.company.put(company(id, { name: 'Server', city: 'Paris', version: 2 }))
    await replayOutbox(store)

    expect(await store.company.get(id)).toMatchObject({ name: 'Second', city: 'Lyon', version: 2 })
    expect(await store.outbox.count()).toBe(2)
  })
})

describe('what the device shows before the server answers', () => {
  const stage = (id: string, kind: 'open' | 'won' | 'lost', rotten_days: number | null) => ({
    id,
    kind,
    name: id,
    pipeline_id: 'pipeline-1',
    position: 1,
    probability: 10,
    rotten_days,
    created_at: '2025-01-01T00:00:00.000Z',
    updated_at: '2025-01-01T00:00:00.000Z',
    version: 1,
  })

  it('a call on a rotten deal makes it fresh until its stage limit passes, without a new version', async () => {
    const id = newId()
    await store.stage.put(stage('stage-1', 'open', 14))
    await store.deal.put(
      deal(id, { rots_at: '2025-02-01T00:00:00.000Z', stage_entered_at: '2025-01-01T00:00:00.000Z' }),
    )
    expect(isRotten((await store.deal.get(id))!)).toBe(true)

    await mutate(
      'activity.log',
      { id: newId(), kind: 'call', deal_id: id, done_at: '2030-01-01T10:00:00.000Z' },
      null,
      store,
    )

    const fresh = (await store.deal.get(id))!
    expect(fresh).toMatchObject({
      last_activity_at: '2030-01-01T10:00:00.000Z',
      rots_at: '2030-01-15T10:00:00.000Z',
      version: 3,
    })
    expect(isRotten(fresh, Date.parse('2030-01-10T00:00:00Z'))).toBe(false)
    expect(isRotten(fresh, Date.parse('2030-01-16T00:00:00Z'))).toBe(true)
  })

  it('a win moves the deal to its won stage, and keeps its stage when the device does not know that one', async () => {
    const [known, unknown] = [newId(), newId()]
    await store.stage.bulkPut([stage('stage-1', 'open', 14), stage('stage-won', 'won', null)])
    await store.deal.bulkPut([deal(known), deal(unknown, { pipeline_id: 'elsewhere' })])

    await mutate('deal.win', { id: known }, 3, store)
    await mutate('deal.win', { id: unknown }, 3, store)

    expect(await store.deal.get(known)).toMatchObject({ status: 'won', stage_id: 'stage-won', rots_at: null })
    expect(await store.deal.get(unknown)).toMatchObject({ status: 'won', stage_id: 'stage-1' })
  })
})
