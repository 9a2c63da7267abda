/**
 * How text becomes search terms, in one place for indexing, querying and highlighting: Unicode
 * letters and digits make words; accents and case do not count (`Amélie` is `amelie`).
 */

const WORD = /[\p{L}\p{N}]+/gu
const ASCII_WORD = /[a-z0-9]+/g
const ASCII_WORD_ANY_CASE = /[A-Za-z0-9]+/g
// biome-ignore lint/suspicious/noControlCharactersInRegex: the whole ASCII range is meant
const ASCII = /^[\u0000-\u007f]*$/

/** Lower case without accents: the form terms are compared in. */
export function fold(text: string): string {
  // Most catalog text is ASCII, where Unicode normalization is the costliest step and changes nothing.
  return ASCII.test(text) ? text.toLowerCase() : text.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase()
}

/** The words of a text, folded. */
export function terms(text: string): string[] {
  if (ASCII.test(text)) return text.toLowerCase().match(ASCII_WORD) ?? []
  return fold(text).match(WORD) ?? []
}

/**
 * Words too common to say anything in long text (synopses, keywords); titles and names keep them,
 * so "The The" and "It" can still be found.
 */
export const STOP_WORDS = new Set(
  (
    'a an and are as at be but by for from had has have he her his i in into is it its of on or our she ' +
    'so than that the their them then there these they this to was we were what when where which who ' +
    'will with you your'
  ).split(' '),
)

/** A word of a text and where it is, for highlighting. */
interface Word {
  start: number
  end: number
  folded: string
}

function words(text: string): Word[] {
  const out: Word[] = []
  // ASCII text (most of a catalog) splits and folds without Unicode property classes.
  const ascii = ASCII.test(text)
  for (const m of text.matchAll(ascii ? ASCII_WORD_ANY_CASE : WORD)) {
    out.push({ start: m.index, end: m.index + m[0].length, folded: ascii ? m[0].toLowerCase() : fold(m[0]) })
  }
  return out
}

/** How many characters of `word` make up its first `foldedLength` folded characters. */
function prefixChars(word: string, foldedLength: number): number {
  let folded = 0
  let i = 0
  for (const ch of word) {
    if (folded >= foldedLength) break
    folded += fold(ch).length
    i += ch.length
  }
  return i
}

export const MARK_OPEN = '<mark>'
export const MARK_CLOSE = '</mark>'

/**
 * The text with matched words wrapped in <mark>…</mark>: words in `whole` entirely, words that
 * start with one of `prefixes` only for the typed part. Plain text with markers, not HTML.
 */
export function highlight(text: string, whole: ReadonlySet<string>, prefixes: readonly string[]): string {
  let out = ''
  let at = 0
  for (const w of words(text)) {
    let end: number | undefined
    if (whole.has(w.folded)) end = w.end
    else {
      const prefix = prefixes.find((p) => w.folded.startsWith(p))
      if (prefix) end = w.start + prefixChars(text.slice(w.start, w.end), prefix.length)
    }
    if (end === undefined) continue
    out += `${text.slice(at, w.start)}${MARK_OPEN}${text.slice(w.start, end)}${MARK_CLOSE}`
    at = end
  }
  return out + text.slice(at)
}

/** False when no matched term or prefix even occurs in an ASCII text: most fields of a hit, skipped without splitting them. */
function mayMatch(text: string, whole: ReadonlySet<string>, prefixes: readonly string[]): boolean {
  if (!ASCII.test(text)) return true
  const lower = text.toLowerCase()
  for (const term of whole) if (lower.includes(term)) return true
  for (const prefix of prefixes) if (lower.includes(prefix)) return true
  return false
}

/** True when the text has a word highlight() would mark. */
export function matches(text: string, whole: ReadonlySet<string>, prefixes: readonly string[]): boolean {
  if (!mayMatch(text, whole, prefixes)) return false
  return words(text).some((w) => whole.has(w.folded) || prefixes.some((p) => w.folded.startsWith(p)))
}

/** About `width` characters of long text around its first match, highlighted; undefined without a match. */
export function snippet(
  text: string,
  whole: ReadonlySet<string>,
  prefixes: readonly string[],
  width = 160,
): string | undefined {
  if (!mayMatch(text, whole, prefixes)) return undefined
  const first = words(text).find((w) => whole.has(w.folded) || prefixes.some((p) => w.folded.startsWith(p)))
  if (!first) return undefined
  const from = Math.max(0, text.lastIndexOf(' ', Math.max(0, first.start - width / 3)) + 1)
  const cut = text.indexOf(' ', Math.min(text.length, from + width))
  const to = cut < 0 ? text.length : cut
  return `${from > 0 ? '…' : ''}${highlight(text.slice(from, to), whole, prefixes)}${to < text.length ? '…' : ''}`
}
