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
