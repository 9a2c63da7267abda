import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

/**
 * A 32-byte secret kept in a file (mode 0600), generated on first use; when several processes race
 * to create it, all end up with the one that was written first.
 */
export function persistedKey(file: string): Buffer {
  const existing = existingKey(file)
  if (existing) return existing
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  const key = randomBytes(32)
  try {
    fs.writeFileSync(file, key.toString('base64url'), { mode: 0o600, flag: 'wx' })
    return key
  } catch {
    return Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64url')
  }
}

/** The secret kept in `file` if there is one (nothing is created). */
export function existingKey(file: string): Buffer | undefined {
  try {
    return Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64url')
  } catch {
    return undefined
  }
}
