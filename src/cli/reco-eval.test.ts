import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { plantedHistory } from '../services/reco/model/synthetic.js'

const reel = (args: string[]) =>
  new Promise<{ code: number; out: string; err: string }>((resolve) => {
    execFile(process.execPath, ['bin/reel.js', 'reco', 'eval', ...args], (error, out, err) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out, err }),
    )
  })

// Each run starts reel through tsx: seconds apiece on a loaded machine.
describe('reel reco eval', { timeout: 120_000 }, () => {
  let dir = ''
  beforeAll(async () => {
    // A MovieLens-shaped folder with planted tastes, 1-based ids as in u.data.
    dir = await mkdtemp(path.join(os.tmpdir(), 'reel-reco-eval-'))
    const { data } = plantedHistory({
      nUsers: 120,
      nItems: 80,
      clusters: 4,
      perUser: 15,
      noise: 0.1,
      seed: 9,
    })
    const lines = [...data.users].map((u, e) => `${u + 1}\t${(data.items[e] as number) + 1}\t4\t881250949`)
    await writeFile(path.join(dir, 'u.data'), `${lines.join('\n')}\n`)
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('prints MAP, nDCG@10, Precision@10, Recall@10 and training time of each model beside the published table', async () => {
    const { code, out, err } = await reel(['--movielens', dir])
    expect(err).toBe('')
    expect(code).toBe(0)
    expect(out).toMatch(
      /1800 ratings, 120 users, 80 movies; split 75\/25 by movie \(seed 42\): \d+ train, \d+ test/,
    )
    expect(out).toMatch(/algorithm\s+MAP\s+nDCG@10\s+Prec@10\s+Recall@10\s+train s/)
    const metrics = (name: string) => {
      const line = out.split('\n').find((l) => l.startsWith(`reel ${name} `))
      return (line?.trim().split(/\s+/).slice(2) ?? []).map(Number)
    }
    for (const name of ['ease', 'itemknn', 'popularity']) {
      const values = metrics(name)
      expect(values).toHaveLength(5)
      for (const v of values) expect(v).toBeGreaterThanOrEqual(0)
    }
    // Planted tastes: the collaborative models beat popularity on nDCG@10.
    expect(metrics('ease')[1]).toBeGreaterThan(metrics('popularity')[1] as number)
    expect(out).toMatch(/BiVAE\s+0\.146\s+0\.475\s+0\.412\s+0\.219/)
  })

  it('runs one algorithm when asked; refuses an unknown one and a folder without u.data', async () => {
    const one = await reel(['--movielens', dir, '--algorithm', 'popularity'])
    expect(one.code).toBe(0)
    expect(one.out).toMatch(/reel popularity/)
    expect(one.out).not.toMatch(/reel ease/)
    const unknown = await reel(['--movielens', dir, '--algorithm', 'svd'])
    expect(unknown.code).not.toBe(0)
    expect(unknown.err).toMatch(/choose one of ease, itemknn, popularity or all/)
    const broken = path.join(dir, 'broken')
    await mkdir(broken)
    await writeFile(path.join(broken, 'u.data'), 'user\titem\trating\n')
    const unreadable = await reel(['--movielens', broken])
    expect(unreadable.code).toBe(1)
    expect(unreadable.err).toMatch(/^reel: cannot read MovieLens-100K at .*broken: u\.data line 1 is not/)
    const missing = await reel(['--movielens', path.join(dir, 'nope')])
    expect(missing.code).toBe(1)
    expect(missing.err).toMatch(/no MovieLens-100K at .*nope: .*u\.data is missing/)
  })
})
