import { badRequest } from '../../platform/errors.js'

/** Maturity ratings from youngest to oldest; a profile sees titles rated at or below its limit. */
export const MATURITY_RATINGS = ['G', 'PG', 'PG-13', 'R', 'NC-17'] as const
export type MaturityRating = (typeof MATURITY_RATINGS)[number]
/** The highest rating a kids profile may be given. */
export const KIDS_MAX_RATING: MaturityRating = 'PG'

export const MAX_PROFILES = 5
export const PROFILE_NAME_MAX = 50
export const PASSWORD_MIN = 8
export const PASSWORD_MAX = 128
const EMAIL_MAX = 254

export const ratingRank = (r: string): number => MATURITY_RATINGS.indexOf(r as MaturityRating)

/** Trimmed, NFC, lower-case: the form in which emails are compared and stored. */
export function normalizeEmail(raw: string): string {
  const email = raw.normalize('NFC').trim().toLowerCase()
  if (email.length > EMAIL_MAX || !/^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/.test(email))
    throw badRequest('invalid_email', 'Enter an email address such as name@example.com')
  return email
}

const COMMON_PASSWORDS = new Set([
  'password',
  'password1',
  'password123',
  '12345678',
  '123456789',
  '1234567890',
  'qwertyuiop',
  'iloveyou',
  'letmein1',
  'abcdefgh',
  'netflix1',
  'passw0rd',
])

/** NIST 800-63B style: length matters, composition rules do not; known and trivial ones are refused. */
export function checkPassword(password: string, email?: string): void {
  const length = [...password].length
  if (length > PASSWORD_MAX)
    throw badRequest('password_too_long', `A password can have at most ${PASSWORD_MAX} characters`)
  if (length < PASSWORD_MIN)
    throw badRequest('weak_password', `A password needs at least ${PASSWORD_MIN} characters`)
  const lower = password.toLowerCase()
  if (COMMON_PASSWORDS.has(lower) || new Set(lower).size <= 2 || (email && lower === email.split('@')[0]))
    throw badRequest('weak_password', 'That password is too easy to guess; choose a longer, less common one')
}

const regions = new Intl.DisplayNames(['en'], { type: 'region' })

/** An ISO 3166-1 alpha-2 country code, upper-cased. */
export function normalizeCountry(raw: string): string {
  const code = raw.trim().toUpperCase()
  let known = false
  try {
    known = /^[A-Z]{2}$/.test(code) && regions.of(code) !== code
  } catch {
    known = false
  }
  if (!known) throw badRequest('invalid_country', `"${raw}" is not an ISO 3166 country code such as US or DE`)
  return code
}

/** Profile names: trimmed, NFC, 1–50 characters, no control characters. Returns [name, key]. */
export function normalizeProfileName(raw: string): [string, string] {
  const name = raw.normalize('NFC').trim()
  const length = [...name].length
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we refuse
  if (length === 0 || length > PROFILE_NAME_MAX || /[\u0000-\u001f\u007f]/.test(name))
    throw badRequest('invalid_profile_name', `A profile name has 1 to ${PROFILE_NAME_MAX} characters`)
  return [name, name.toLocaleLowerCase('und')]
}

export function normalizeLanguage(raw: string): string {
  try {
    const [tag] = Intl.getCanonicalLocales(raw.trim())
    if (tag && tag.length <= 35) return tag
  } catch {}
  throw badRequest('invalid_language', `"${raw}" is not a language tag such as en or pt-BR`)
}
