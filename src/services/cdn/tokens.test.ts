import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { UrlSigner } from './tokens.js'

describe('UrlSigner', () => {
  it("checks its own tokens and refuses another key's, a changed payload and an expired one", () => {
    const signer = new UrlSigner(randomBytes(32))
    const grant = { sid: 's1', prefix: 'titles/t1/', exp: 2_000_000_000, maxHeight: 720 }
    const token = signer.sign(grant)
    expect(signer.check(token, 1_000)).toEqual({ ok: true, grant })
    expect(new UrlSigner(randomBytes(32)).check(token, 1_000)).toEqual({ ok: false, reason: 'forged' })
    const other = signer.sign({ ...grant, prefix: 'titles/t2/' })
    const spliced = `${other.split('.')[0]}.${token.split('.')[1]}`
    expect(signer.check(spliced, 1_000)).toEqual({ ok: false, reason: 'forged' })
    expect(signer.check(token, 2_000_000_000_000)).toEqual({ ok: false, reason: 'expired' })
  })
})

describe('UrlSigner.signSoon', () => {
  it('signs the tokens asked for in one turn together, at its end, each as sign would', async () => {
    const signer = new UrlSigner(randomBytes(32))
    const grants = [1, 2, 3].map((i) => ({
      sid: `s${i}`,
      prefix: `titles/t${i}/`,
      exp: 2_000_000_000,
      maxHeight: 720,
    }))
    const signed: string[] = []
    const tokens = grants.map((g) =>
      signer.signSoon(g).then((t) => {
        signed.push(t)
        return t
      }),
    )
    let immediateRan = false
    setImmediate(() => {
      immediateRan = true
    })
    await Promise.resolve()
    expect(signed).toEqual([]) // not in this turn's microtasks
    const all = await Promise.all(tokens)
    // The batch was queued first in this turn, so it ran before the immediate queued after it.
    expect(immediateRan).toBe(false)
    expect(all).toEqual(grants.map((g) => signer.sign(g)))
    for (const [i, token] of all.entries())
      expect(signer.check(token, 1_000)).toEqual({ ok: true, grant: grants[i] })
  })

  it('rejects every waiting token while the key is not loaded, and signs once it is', async () => {
    let give: (key: Buffer) => void = () => {}
    const signer = new UrlSigner(() => new Promise<Buffer>((resolve) => (give = resolve)))
    const grant = { sid: 's1', prefix: 'titles/t1/', exp: 2_000_000_000, maxHeight: 0 }
    const early = await Promise.allSettled([signer.signSoon(grant), signer.signSoon(grant)])
    expect(early.map((r) => r.status)).toEqual(['rejected', 'rejected'])
    give(randomBytes(32))
    await signer.ready()
    expect(signer.check(await signer.signSoon(grant), 1_000)).toEqual({ ok: true, grant })
  })
})
