import { describe, expect, it } from 'vitest'
import { isAppError } from '../../../platform/errors.js'
import { plantedHistory } from './synthetic.js'
import { trainModel } from './train.js'
import type { TrainingData } from './types.js'
import { trainInWorker } from './worker.js'

const copy = (d: TrainingData): TrainingData => ({
  ...d,
  users: d.users.slice(),
  items: d.items.slice(),
  weights: d.weights.slice(),
})

describe('trainInWorker', () => {
  const { data } = plantedHistory({ nUsers: 200, nItems: 300, clusters: 5, perUser: 20, noise: 0.1, seed: 5 })

  it.each(['ease', 'itemknn', 'popularity'] as const)(
    '%s gives the same model as training in this thread',
    async (algorithm) => {
      const options = { algorithm, topN: 15, topSimilar: 7 }
      const here = trainModel(copy(data), options)
      const input = copy(data)
      const there = await trainInWorker(input, options)
      expect({ ...there, trainMs: 0 }).toEqual({ ...here, trainMs: 0 })
      expect(there.trainMs).toBeGreaterThan(0)
      // The input buffers were transferred to the worker, not copied.
      expect(input.users.length).toBe(0)
      expect(input.weights.length).toBe(0)
    },
  )

  it('keeps this thread free while the model trains', async () => {
    let turns = 0
    const ticker = setInterval(() => turns++, 1)
    try {
      const model = await trainInWorker(copy(data), { algorithm: 'ease', topN: 10, topSimilar: 0 })
      expect(model.nItems).toBe(300)
    } finally {
      clearInterval(ticker)
    }
    expect(turns).toBeGreaterThan(0)
  })

  it('brings bad input back as the same AppError', async () => {
    const bad = { ...copy(data), items: data.items.map((i) => (i === 7 ? 300 : i)) }
    const error = await trainInWorker(bad, { algorithm: 'ease', topN: 10, topSimilar: 0 }).catch(
      (e: unknown) => e,
    )
    expect(isAppError(error) && error.code).toBe('invalid_training_data')
    expect((error as Error).message).toMatch(/item 300 is outside 0\.\.299/)
    const options = await trainInWorker(copy(data), { algorithm: 'ease', topN: -1, topSimilar: 0 }).catch(
      (e: unknown) => e,
    )
    expect(isAppError(options) && options.code).toBe('invalid_train_options')
  })

  it('accepts arrays sharing one buffer (transferred once)', async () => {
    const buffer = new ArrayBuffer(data.users.length * 8)
    const users = new Int32Array(buffer, 0, data.users.length)
    const items = new Int32Array(buffer, data.users.length * 4, data.users.length)
    users.set(data.users)
    items.set(data.items)
    const model = await trainInWorker(
      { ...data, users, items, weights: data.weights.slice() },
      {
        algorithm: 'popularity',
        topN: 5,
        topSimilar: 0,
      },
    )
    expect(model.perUser).toEqual(
      trainModel(copy(data), { algorithm: 'popularity', topN: 5, topSimilar: 0 }).perUser,
    )
  })

  it('stops the worker when the signal aborts, and does not start one for an aborted signal', async () => {
    const big = plantedHistory({ nUsers: 400, nItems: 1500, clusters: 5, perUser: 30, noise: 0.1, seed: 1 })
    const controller = new AbortController()
    const training = trainInWorker(
      big.data,
      { algorithm: 'ease', topN: 10, topSimilar: 0 },
      { signal: controller.signal },
    )
    setTimeout(() => controller.abort(new Error('reel is stopping')), 50)
    await expect(training).rejects.toThrow('reel is stopping')
    const aborted = AbortSignal.abort(new Error('too late'))
    const input = copy(data)
    await expect(
      trainInWorker(input, { algorithm: 'popularity', topN: 5, topSimilar: 0 }, { signal: aborted }),
    ).rejects.toThrow('too late')
    // Nothing was transferred: no worker was started.
    expect(input.users.length).toBe(data.users.length)
  })
})
