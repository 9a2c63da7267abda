import { useEffect, useRef, useState } from 'react'
import { Link, useSearchParams } from 'wouter'
import type { SearchHit, SearchResponse } from '../../../src/services/search/service.js'
import { Artwork } from '../Artwork'
import { ApiError, api } from '../api'
import { useSession } from '../session'

type Hit = SearchHit
type SearchResult = SearchResponse

/** Renders the server's highlight (matched words wrapped in <mark>) without trusting it as HTML. */
function Highlighted({ text }: { text: string }) {
  const parts = text.split(/(<mark>.*?<\/mark>)/g)
  return (
    <>
      {parts.map((part, i) =>
        part.startsWith('<mark>') ? (
          // biome-ignore lint/suspicious/noArrayIndexKey: parts of one static string
          <mark key={i}>{part.slice(6, -7)}</mark>
        ) : (
          // biome-ignore lint/suspicious/noArrayIndexKey: parts of one static string
          <span key={i}>{part}</span>
        ),
      )}
    </>
  )
}

const titleHighlight = (hit: Hit) =>
  typeof hit.highlight === 'string' ? hit.highlight : (hit.highlight?.title ?? hit.title)

export function SearchPage() {
  const session = useSession()
  const [params, setParams] = useSearchParams()
  const q = params.get('q') ?? ''
  const genre = params.get('genre') ?? ''
  const [result, setResult] = useState<SearchResult>()
  const [error, setError] = useState<string>()
  const latest = useRef(0)

  useEffect(() => {
    if (!q.trim()) {
      setResult(undefined)
      return
    }
    // Results follow every keystroke; an older answer arriving late never replaces a newer one.
    const ticket = ++latest.current
    const query = new URLSearchParams({ q, limit: '40' })
    if (genre) query.set('genre', genre)
    if (session.profile) query.set('profileId', session.profile.id)
    api<SearchResult>('GET', `/api/v1/search?${query}`)
      .then((r) => {
        if (ticket === latest.current) {
          setResult(r)
          setError(undefined)
        }
      })
      .catch((e) => {
        if (ticket === latest.current) setError(e instanceof ApiError ? e.message : 'Search failed')
      })
  }, [q, genre, session.profile])

  const set = (key: string, value: string) =>
    setParams((prev) => {
      const next = new URLSearchParams(prev)
      if (value) next.set(key, value)
      else next.delete(key)
      return next
    })

  return (
    <section>
      <input
        className="search-box"
        type="search"
        placeholder="Titles, people, genres"
        aria-label="Search"
        value={q}
        onChange={(e) => set('q', e.target.value)}
      />
      {error && <p className="error">{error}</p>}
      {result && (
        <>
          <p className="muted">
            {result.total} result{result.total === 1 ? '' : 's'} · {result.tookMs} ms
          </p>
          {result.facets.genre && Object.keys(result.facets.genre).length > 0 && (
            <fieldset className="facets">
              <legend className="muted">Genres</legend>
              {Object.entries(result.facets.genre).map(([name, count]) => (
                <button
                  key={name}
                  type="button"
                  aria-pressed={genre === name}
                  className={genre === name ? 'facet on' : 'facet'}
                  onClick={() => set('genre', genre === name ? '' : name)}
                >
                  {name} <span className="muted">{count}</span>
                </button>
              ))}
            </fieldset>
          )}
          {result.hits.length === 0 ? (
            <p className="hero">Nothing found for “{q}”. Try another title, a person or a genre.</p>
          ) : (
            <ul className="grid">
              {result.hits.map((hit) => (
                <li key={hit.id} className="tile">
                  <Link href={`/title/${hit.id}`} className="tile-link">
                    <Artwork id={hit.id} title={hit.title} />
                    <span>
                      <Highlighted text={titleHighlight(hit)} />
                    </span>
                    <span className="muted">
                      {[hit.year, hit.type, hit.genres.slice(0, 2).join(', ')].filter(Boolean).join(' · ')}
                    </span>
                  </Link>
                </li>
              ))}
            </ul>
          )}
        </>
      )}
    </section>
  )
}
