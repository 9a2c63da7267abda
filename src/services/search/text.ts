/**
 * How text becomes search terms, in one place for indexing, querying and highlighting: Unicode
 * letters and digits make words; accents and case do not count (`Amélie` is `amelie`).
 */

const WORD = /[\p{L}\p{N}]+/gu
const ASCII_WORD = /[a-z0-9]+/g
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

const isAsciiWordChar = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
const lowerAscii = (c: number) => (c >= 65 && c <= 90 ? c + 32 : c)

/**
 * Gives each word of a text (where it is) to `visit` until it returns true; `ascii` says which way
 * the text was split. ASCII text (most of a catalog) is split by hand, without a match object per
 * word: highlighting runs on every hit shown, and its garbage set how often a query met a
 * collection pause.
 */
function eachWord(text: string, visit: (start: number, end: number, ascii: boolean) => boolean): void {
  if (ASCII.test(text)) {
    let start = -1
    for (let i = 0; i <= text.length; i++) {
      if (i < text.length && isAsciiWordChar(text.charCodeAt(i))) {
        if (start < 0) start = i
      } else if (start >= 0) {
        if (visit(start, i, true)) return
        start = -1
      }
    }
    return
  }
  for (const m of text.matchAll(WORD)) if (visit(m.index, m.index + m[0].length, false)) return
}

/** True when the ASCII word at `text[start, end)` starts with the folded `prefix`, without a copy of the word. */
function asciiStartsWith(text: string, start: number, end: number, prefix: string): boolean {
  if (end - start < prefix.length) return false
  for (let k = 0; k < prefix.length; k++)
    if (lowerAscii(text.charCodeAt(start + k)) !== prefix.charCodeAt(k)) return false
  return true
}

/**
 * Where the mark of the word at `text[start, end)` ends: `end` for a word in `whole`, the end of
 * the typed part for a word that starts with one of `prefixes`; undefined for a word not matched.
 */
function markEnd(
  text: string,
  start: number,
  end: number,
  ascii: boolean,
  whole: ReadonlySet<string>,
  prefixes: readonly string[],
): number | undefined {
  if (ascii) {
    for (const term of whole)
      if (term.length === end - start && asciiStartsWith(text, start, end, term)) return end
    for (const prefix of prefixes) if (asciiStartsWith(text, start, end, prefix)) return start + prefix.length
    return undefined
  }
  const word = text.slice(start, end)
  const folded = fold(word)
  if (whole.has(folded)) return end
  const prefix = prefixes.find((p) => folded.startsWith(p))
  return prefix === undefined ? undefined : start + prefixChars(word, prefix.length)
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
  eachWord(text, (start, wordEnd, ascii) => {
    const end = markEnd(text, start, wordEnd, ascii, whole, prefixes)
    if (end === undefined) return false
    out += `${text.slice(at, start)}${MARK_OPEN}${text.slice(start, end)}${MARK_CLOSE}`
    at = end
    return false
  })
  return at === 0 ? text : out + text.slice(at)
}

/** True when the ASCII `text` has `term` (folded) anywhere, in any case, without a lower-case copy. */
function asciiIncludes(text: string, term: string): boolean {
  const last = text.length - term.length
  for (let i = 0; i <= last; i++) {
    let k = 0
    while (k < term.length && lowerAscii(text.charCodeAt(i + k)) === term.charCodeAt(k)) k++
    if (k === term.length) return true
  }
  return false
}

/** False when no matched term or prefix even occurs in an ASCII text: most fields of a hit, skipped without splitting them. */
function mayMatch(text: string, whole: ReadonlySet<string>, prefixes: readonly string[]): boolean {
  if (!ASCII.test(text)) return true
  for (const term of whole) if (asciiIncludes(text, term)) return true
  for (const prefix of prefixes) if (asciiIncludes(text, prefix)) return true
  return false
}

/** True when the text has a word highlight() would mark. */
export function matches(text: string, whole: ReadonlySet<string>, prefixes: readonly string[]): boolean {
  if (!mayMatch(text, whole, prefixes)) return false
  let found = false
  eachWord(text, (start, end, ascii) => {
    found = markEnd(text, start, end, ascii, whole, prefixes) !== undefined
    return found
  })
  return found
}

/** About `width` characters of long text around its first match, highlighted; undefined without a match. */
export function snippet(
  text: string,
  whole: ReadonlySet<string>,
  prefixes: readonly string[],
  width = 160,
): string | undefined {
  if (!mayMatch(text, whole, prefixes)) return undefined
  let first: number | undefined
  eachWord(text, (start, end, ascii) => {
    if (markEnd(text, start, end, ascii, whole, prefixes) !== undefined) first = start
    return first !== undefined
  })
  if (first === undefined) return undefined
  const from = Math.max(0, text.lastIndexOf(' ', Math.max(0, first - width / 3)) + 1)
  const cut = text.indexOf(' ', Math.min(text.length, from + width))
  const to = cut < 0 ? text.length : cut
  return `${from > 0 ? '…' : ''}${highlight(text.slice(from, to), whole, prefixes)}${to < text.length ? '…' : ''}`
}
