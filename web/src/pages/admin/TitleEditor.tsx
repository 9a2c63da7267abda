import { type FormEvent, useCallback, useEffect, useRef, useState } from 'react'
import { Link, useLocation, useParams } from 'wouter'
import type { TitleDetail, TitleSummary } from '../../../../src/services/catalog/service.js'
import { ApiError, api } from '../../api'
import { AdminNav } from './AdminNav'

const RATINGS = ['G', 'PG', 'PG-13', 'R', 'NC-17'] as const
const ROLES = ['director', 'cast', 'writer', 'creator', 'producer'] as const
type Role = (typeof ROLES)[number]
type Genre = { id: string; name: string }

interface CreditRow {
  key: number
  personId?: string
  /** The name as loaded: an unchanged name keeps the person, a changed one names a (new) person. */
  loadedName?: string
  name: string
  role: Role
  character: string
}
interface WindowRow {
  key: number
  region: string
  startsAt: string
  endsAt: string
}
interface Draft {
  type: 'movie' | 'series'
  title: string
  synopsis: string
  year: string
  runtimeMin: string
  maturityRating: (typeof RATINGS)[number]
  originalLanguage: string
  countries: string
  genres: string[]
  tags: string
  externalId: string
  popularity: string
  poster: string
  backdrop: string
  logo: string
  credits: CreditRow[]
  availability: WindowRow[]
}

let nextKey = 1
const key = () => nextKey++

const EMPTY: Draft = {
  type: 'movie',
  title: '',
  synopsis: '',
  year: '',
  runtimeMin: '',
  maturityRating: 'PG-13',
  originalLanguage: '',
  countries: '',
  genres: [],
  tags: '',
  externalId: '',
  popularity: '0',
  poster: '',
  backdrop: '',
  logo: '',
  credits: [],
  availability: [],
}

/** `2025-01-31T00:00:00.000Z` as the value of a UTC datetime-local input, and back. */
const toInput = (iso: string | null) => (iso ? iso.slice(0, 16) : '')
const fromInput = (value: string) => (value ? `${value}:00Z` : null)
const list = (text: string) =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)

function draftOf(t: TitleDetail): Draft {
  return {
    type: t.type,
    title: t.title,
    synopsis: t.synopsis,
    year: t.year === null ? '' : String(t.year),
    runtimeMin: t.runtimeMin === null ? '' : String(t.runtimeMin),
    maturityRating: t.maturityRating,
    originalLanguage: t.originalLanguage ?? '',
    countries: t.countries.join(', '),
    genres: t.genres.map((g) => g.id),
    tags: t.tags.join(', '),
    externalId: t.externalId ?? '',
    popularity: String(t.popularity),
    poster: t.artwork.poster ?? '',
    backdrop: t.artwork.backdrop ?? '',
    logo: t.artwork.logo ?? '',
    credits: t.credits
      .toSorted((a, b) => a.order - b.order)
      .map((c) => ({
        key: key(),
        personId: c.personId,
        loadedName: c.name,
        name: c.name,
        role: c.role,
        character: c.character ?? '',
      })),
    availability: t.availability.map((w) => ({
      key: key(),
      region: w.region,
      startsAt: toInput(w.startsAt),
      endsAt: toInput(w.endsAt),
    })),
  }
}

/** The draft as the admin API takes it (lists given replace the old ones). */
function bodyOf(d: Draft) {
  const number = (s: string) => (s.trim() === '' ? null : Number(s))
  const artwork = Object.fromEntries(
    (['poster', 'backdrop', 'logo'] as const).flatMap((k) => (d[k].trim() ? [[k, d[k].trim()]] : [])),
  )
  return {
    title: d.title,
    synopsis: d.synopsis,
    year: number(d.year),
    runtimeMin: number(d.runtimeMin),
    maturityRating: d.maturityRating,
    originalLanguage: d.originalLanguage.trim() || null,
    countries: list(d.countries),
    genres: d.genres,
    tags: list(d.tags),
    externalId: d.externalId.trim() || null,
    popularity: Number(d.popularity || 0),
    artwork,
    credits: d.credits
      .filter((c) => c.name.trim() || c.personId)
      .map((c) => ({
        ...(c.personId && c.name === c.loadedName ? { personId: c.personId } : { name: c.name }),
        role: c.role,
        character: c.role === 'cast' && c.character.trim() ? c.character : null,
      })),
    availability: d.availability.map((w) => ({
      region: w.region,
      startsAt: fromInput(w.startsAt),
      endsAt: fromInput(w.endsAt),
    })),
  }
}

/** Which field an API error is about: `invalid_year` → year; a schema error names `body/<field>`. */
const FIELD_OF_CODE: Record<string, string> = {
  invalid_title: 'title',
  invalid_synopsis: 'synopsis',
  invalid_year: 'year',
  invalid_runtime: 'runtimeMin',
  invalid_popularity: 'popularity',
  invalid_genres: 'genres',
  invalid_tags: 'tags',
  invalid_countries: 'countries',
  invalid_credits: 'credits',
  invalid_name: 'credits',
  invalid_availability: 'availability',
  invalid_region: 'availability',
  invalid_artwork: 'artwork',
  invalid_external_id: 'externalId',
  external_id_taken: 'externalId',
  invalid_language: 'originalLanguage',
}
function fieldOf(e: ApiError): string | undefined {
  const fromSchema = /body\/(\w+)/.exec(e.message)?.[1]
  return FIELD_OF_CODE[e.code] ?? fromSchema
}

/** An image URL on another origin (the page's CSP blocks those). */
const foreign = (url: string) => {
  try {
    return url.trim() !== '' && new URL(url, location.href).origin !== location.origin
  } catch {
    return false
  }
}

type Summary = TitleSummary

/** Every title, newest first, filtered as you type (shown anywhere or not); open one, or start a new one. */
export function AdminTitlesPage() {
  const [q, setQ] = useState('')
  const [page, setPage] = useState<{ items: Summary[]; nextCursor: string | null }>()
  const [error, setError] = useState<string>()
  const latest = useRef(0)
  const load = useCallback(async (query: string, cursor?: string) => {
    const ticket = ++latest.current
    const params = new URLSearchParams({ limit: '50' })
    if (query.trim()) params.set('q', query)
    if (cursor) params.set('cursor', cursor)
    try {
      const next = await api<{ items: Summary[]; nextCursor: string | null }>(
        'GET',
        `/api/v1/admin/titles?${params}`,
      )
      if (ticket !== latest.current) return
      setError(undefined)
      setPage((prev) =>
        cursor && prev ? { items: [...prev.items, ...next.items], nextCursor: next.nextCursor } : next,
      )
    } catch (e) {
      if (ticket === latest.current) setError(e instanceof ApiError ? e.message : 'Could not list the titles')
    }
  }, [])
  useEffect(() => {
    load(q)
  }, [q, load])
  return (
    <section className="card wide">
      <h1>Admin</h1>
      <AdminNav />
      <div className="row">
        <Link href="/admin/titles/new" className="button primary">
          New title
        </Link>
        <label className="grow">
          Find a title
          <input
            type="search"
            value={q}
            onChange={(e) => setQ(e.target.value)}
            placeholder="Part of a title"
          />
        </label>
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {page && page.items.length === 0 && (
        <p className="muted">
          {q.trim() ? `No title contains “${q}”.` : 'No titles yet: upload or import some.'}
        </p>
      )}
      {page && page.items.length > 0 && (
        <table className="titles">
          <caption className="visually-hidden">Titles, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Title</th>
              <th scope="col">Type</th>
              <th scope="col">Year</th>
              <th scope="col">Rating</th>
              <th scope="col">Media</th>
            </tr>
          </thead>
          <tbody>
            {page.items.map((t) => (
              <tr key={t.id}>
                <td>
                  <Link href={`/admin/titles/${t.id}`}>{t.title}</Link>
                </td>
                <td>{t.type}</td>
                <td>{t.year ?? ''}</td>
                <td>{t.maturityRating}</td>
                <td className={`status ${t.mediaStatus}`}>{t.mediaStatus}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {page?.nextCursor && (
        <button type="button" onClick={() => load(q, page.nextCursor ?? undefined)}>
          More titles
        </button>
      )}
    </section>
  )
}

/** Every catalog field of one title (new when the id is `new`), with the API's errors next to their field. */
export function AdminTitleEditPage() {
  const { id } = useParams<{ id: string }>()
  const isNew = id === 'new'
  const [, navigate] = useLocation()
  const [draft, setDraft] = useState<Draft | undefined>(isNew ? EMPTY : undefined)
  const [saved, setSaved] = useState<TitleDetail>()
  const [genres, setGenres] = useState<Genre[]>([])
  const [error, setError] = useState<{ message: string; field?: string; code: string }>()
  const [loadError, setLoadError] = useState<string>()
  const [status, setStatus] = useState<string>()
  const [busy, setBusy] = useState(false)
  const formRef = useRef<HTMLFormElement>(null)

  useEffect(() => {
    api<{ genres: Genre[] }>('GET', '/api/v1/genres')
      .then((r) => setGenres(r.genres))
      .catch(() => setGenres([]))
  }, [])
  useEffect(() => {
    if (isNew) {
      setDraft({
        ...EMPTY,
        credits: [],
        availability: [{ key: key(), region: '*', startsAt: '', endsAt: '' }],
      })
      setSaved(undefined)
      return
    }
    api<TitleDetail>('GET', `/api/v1/admin/titles/${encodeURIComponent(id)}`)
      .then((t) => {
        setSaved(t)
        setDraft(draftOf(t))
      })
      .catch((e) => setLoadError(e instanceof ApiError ? e.message : 'Could not load this title'))
  }, [id, isNew])

  // Put the keyboard on the field the server complained about.
  useEffect(() => {
    if (!error?.field) return
    const el = formRef.current?.querySelector<HTMLElement>(`[data-field="${error.field}"]`)
    el?.focus()
  }, [error])

  if (loadError)
    return (
      <section className="card wide">
        <AdminNav />
        <p className="error" role="alert">
          {loadError}
        </p>
      </section>
    )
  if (!draft) return <p className="muted center">Loading…</p>

  const set = <K extends keyof Draft>(k: K, v: Draft[K]) => setDraft({ ...draft, [k]: v })
  const setCredit = (i: number, change: Partial<CreditRow>) =>
    set(
      'credits',
      draft.credits.map((c, j) => (j === i ? { ...c, ...change } : c)),
    )
  const setWindow = (i: number, change: Partial<WindowRow>) =>
    set(
      'availability',
      draft.availability.map((w, j) => (j === i ? { ...w, ...change } : w)),
    )
  const moveCredit = (i: number, by: number) => {
    const next = [...draft.credits]
    const [moved] = next.splice(i, 1)
    if (moved) next.splice(Math.max(0, Math.min(next.length, i + by)), 0, moved)
    set('credits', next)
  }
  const invalid = (field: string) => (error?.field === field ? { 'aria-invalid': true as const } : {})
  const fieldError = (field: string) =>
    error?.field === field ? (
      <span className="error field-error" id={`error-${field}`}>
        {error.message}
      </span>
    ) : null
  const describedBy = (field: string) =>
    error?.field === field ? { 'aria-describedby': `error-${field}` } : {}

  async function save(e: FormEvent) {
    e.preventDefault()
    if (!draft) return
    setBusy(true)
    setError(undefined)
    setStatus(undefined)
    try {
      const body = bodyOf(draft)
      const result = isNew
        ? await api<TitleDetail>('POST', '/api/v1/admin/titles', { type: draft.type, ...body })
        : await api<TitleDetail>('PATCH', `/api/v1/admin/titles/${encodeURIComponent(id)}`, body)
      setSaved(result)
      setDraft(draftOf(result))
      setStatus(`Saved “${result.title}”.`)
      if (isNew) navigate(`/admin/titles/${result.id}`, { replace: true })
    } catch (err) {
      if (err instanceof ApiError) setError({ message: err.message, code: err.code, field: fieldOf(err) })
      else setError({ message: 'The title was not saved; try again', code: 'unknown' })
    } finally {
      setBusy(false)
    }
  }

  async function remove() {
    if (!saved || !window.confirm(`Delete “${saved.title}” with its seasons and episodes?`)) return
    try {
      await api('DELETE', `/api/v1/admin/titles/${encodeURIComponent(saved.id)}`)
      navigate('/admin/titles')
    } catch (err) {
      setError({ message: err instanceof ApiError ? err.message : 'Not deleted; try again', code: 'delete' })
    }
  }

  const preview = [draft.backdrop, draft.poster].find((url) => url && !foreign(url))
  return (
    <section className="card wide">
      <h1>{isNew ? 'New title' : `Edit “${saved?.title ?? ''}”`}</h1>
      <AdminNav />
      {saved && (
        <p className="muted">
          {saved.type} · media {saved.mediaStatus} · version {saved.version} ·{' '}
          <Link href={`/title/${saved.id}`}>View as a member</Link>
        </p>
      )}
      {error && (
        <p className="error" role="alert">
          {error.field ? `${error.message} (${error.field})` : error.message}
        </p>
      )}
      {status && (
        <output className="saved" aria-live="polite">
          {status}
        </output>
      )}
      <form ref={formRef} className="title-editor" onSubmit={save} noValidate>
        {preview && <div className="editor-art" style={{ backgroundImage: `url(${preview})` }} />}
        {isNew && (
          <label>
            Type
            <select value={draft.type} onChange={(e) => set('type', e.target.value as Draft['type'])}>
              <option value="movie">Movie</option>
              <option value="series">Series</option>
            </select>
          </label>
        )}
        <label>
          Title
          <input
            data-field="title"
            value={draft.title}
            onChange={(e) => set('title', e.target.value)}
            {...invalid('title')}
            {...describedBy('title')}
          />
        </label>
        {fieldError('title')}
        <label className="wide-field">
          Synopsis
          <textarea
            data-field="synopsis"
            rows={4}
            value={draft.synopsis}
            onChange={(e) => set('synopsis', e.target.value)}
            {...invalid('synopsis')}
          />
        </label>
        {fieldError('synopsis')}
        <div className="fields">
          <label>
            Year
            <input
              data-field="year"
              inputMode="numeric"
              value={draft.year}
              onChange={(e) => set('year', e.target.value)}
              {...invalid('year')}
              {...describedBy('year')}
            />
          </label>
          {fieldError('year')}
          <label>
            Runtime (min)
            <input
              data-field="runtimeMin"
              inputMode="numeric"
              value={draft.runtimeMin}
              onChange={(e) => set('runtimeMin', e.target.value)}
              {...invalid('runtimeMin')}
            />
          </label>
          {fieldError('runtimeMin')}
          <label>
            Maturity rating
            <select
              value={draft.maturityRating}
              onChange={(e) => set('maturityRating', e.target.value as Draft['maturityRating'])}
            >
              {RATINGS.map((r) => (
                <option key={r}>{r}</option>
              ))}
            </select>
          </label>
          <label>
            Original language
            <input
              data-field="originalLanguage"
              value={draft.originalLanguage}
              placeholder="en"
              onChange={(e) => set('originalLanguage', e.target.value)}
              {...invalid('originalLanguage')}
            />
          </label>
          {fieldError('originalLanguage')}
          <label>
            Popularity
            <input
              data-field="popularity"
              inputMode="decimal"
              value={draft.popularity}
              onChange={(e) => set('popularity', e.target.value)}
              {...invalid('popularity')}
            />
          </label>
          {fieldError('popularity')}
          <label>
            External id
            <input
              data-field="externalId"
              value={draft.externalId}
              onChange={(e) => set('externalId', e.target.value)}
              {...invalid('externalId')}
            />
          </label>
          {fieldError('externalId')}
        </div>
        <label>
          Countries of origin
          <input
            data-field="countries"
            value={draft.countries}
            placeholder="US, FR"
            onChange={(e) => set('countries', e.target.value)}
            {...invalid('countries')}
          />
        </label>
        {fieldError('countries')}
        <label>
          Tags
          <input
            data-field="tags"
            value={draft.tags}
            placeholder="heist, friendship"
            onChange={(e) => set('tags', e.target.value)}
            {...invalid('tags')}
          />
        </label>
        {fieldError('tags')}
        <fieldset className="genres" data-field="genres" tabIndex={-1} {...invalid('genres')}>
          <legend>Genres</legend>
          {genres.map((g) => (
            <label key={g.id} className="inline">
              <input
                type="checkbox"
                checked={draft.genres.includes(g.id)}
                onChange={(e) =>
                  set(
                    'genres',
                    e.target.checked ? [...draft.genres, g.id] : draft.genres.filter((x) => x !== g.id),
                  )
                }
              />
              {g.name}
            </label>
          ))}
          {fieldError('genres')}
        </fieldset>
        <fieldset data-field="artwork" tabIndex={-1} {...invalid('artwork')}>
          <legend>Artwork (image URLs)</legend>
          <div className="fields">
            {(['poster', 'backdrop', 'logo'] as const).map((k) => (
              <label key={k}>
                {k[0]?.toUpperCase() + k.slice(1)}
                <input value={draft[k]} onChange={(e) => set(k, e.target.value)} />
              </label>
            ))}
          </div>
          {[draft.poster, draft.backdrop, draft.logo].some(foreign) && (
            <p className="notice">
              Browsers will not show images from other sites: reel’s Content Security Policy allows its own
              address (and its edges) only. Use a URL on this server.
            </p>
          )}
          {fieldError('artwork')}
        </fieldset>
        <fieldset data-field="credits" tabIndex={-1} {...invalid('credits')}>
          <legend>People</legend>
          {draft.credits.length === 0 && <p className="muted">No one yet.</p>}
          <ol className="credit-rows">
            {draft.credits.map((c, i) => (
              <li key={c.key} className="credit-row">
                <input
                  aria-label={`Name of person ${i + 1}`}
                  value={c.name}
                  onChange={(e) => setCredit(i, { name: e.target.value })}
                />
                <select
                  aria-label={`Role of person ${i + 1}`}
                  value={c.role}
                  onChange={(e) => setCredit(i, { role: e.target.value as Role })}
                >
                  {ROLES.map((r) => (
                    <option key={r}>{r}</option>
                  ))}
                </select>
                <input
                  aria-label={`Character of person ${i + 1}`}
                  placeholder="Character"
                  disabled={c.role !== 'cast'}
                  value={c.character}
                  onChange={(e) => setCredit(i, { character: e.target.value })}
                />
                <button
                  type="button"
                  aria-label={`Move person ${i + 1} up`}
                  onClick={() => moveCredit(i, -1)}
                >
                  ↑
                </button>
                <button
                  type="button"
                  aria-label={`Move person ${i + 1} down`}
                  onClick={() => moveCredit(i, 1)}
                >
                  ↓
                </button>
                <button
                  type="button"
                  aria-label={`Remove person ${i + 1}`}
                  onClick={() =>
                    set(
                      'credits',
                      draft.credits.filter((_, j) => j !== i),
                    )
                  }
                >
                  ✕
                </button>
              </li>
            ))}
          </ol>
          <button
            type="button"
            onClick={() =>
              set('credits', [...draft.credits, { key: key(), name: '', role: 'cast', character: '' }])
            }
          >
            Add person
          </button>
          {fieldError('credits')}
        </fieldset>
        <fieldset data-field="availability" tabIndex={-1} {...invalid('availability')}>
          <legend>Availability (times in UTC; empty: no limit)</legend>
          {draft.availability.length === 0 && (
            <p className="muted">Shown nowhere: add a window to make it watchable.</p>
          )}
          <ol className="window-rows">
            {draft.availability.map((w, i) => (
              <li key={w.key} className="window-row">
                <input
                  aria-label={`Region of window ${i + 1}`}
                  placeholder="US or *"
                  value={w.region}
                  onChange={(e) => setWindow(i, { region: e.target.value })}
                />
                <label className="inline">
                  from
                  <input
                    type="datetime-local"
                    aria-label={`Start of window ${i + 1}`}
                    value={w.startsAt}
                    onChange={(e) => setWindow(i, { startsAt: e.target.value })}
                  />
                </label>
                <label className="inline">
                  until
                  <input
                    type="datetime-local"
                    aria-label={`End of window ${i + 1}`}
                    value={w.endsAt}
                    onChange={(e) => setWindow(i, { endsAt: e.target.value })}
                  />
                </label>
                <button
                  type="button"
                  aria-label={`Remove window ${i + 1}`}
                  onClick={() =>
                    set(
                      'availability',
                      draft.availability.filter((_, j) => j !== i),
                    )
                  }
                >
                  ✕
                </button>
              </li>
            ))}
          </ol>
          <button
            type="button"
            onClick={() =>
              set('availability', [
                ...draft.availability,
                { key: key(), region: '', startsAt: '', endsAt: '' },
              ])
            }
          >
            Add window
          </button>
          {fieldError('availability')}
        </fieldset>
        <div className="row">
          <button type="submit" className="primary" disabled={busy}>
            {isNew ? 'Create title' : 'Save changes'}
          </button>
          {saved && (
            <button type="button" className="danger" onClick={remove}>
              Delete title
            </button>
          )}
        </div>
      </form>
      {saved && saved.type === 'series' && <SeasonsEditor title={saved} onChange={setSaved} />}
    </section>
  )
}

/** A series' seasons and episodes: add a season, add, rename or remove an episode. */
function SeasonsEditor({ title, onChange }: { title: TitleDetail; onChange: (t: TitleDetail) => void }) {
  const [error, setError] = useState<string>()
  const reload = () =>
    api<TitleDetail>('GET', `/api/v1/admin/titles/${title.id}`).then(onChange, () => undefined)
  const run = async (call: () => Promise<unknown>) => {
    setError(undefined)
    try {
      await call()
      await reload()
    } catch (e) {
      setError(e instanceof ApiError ? e.message : 'Not saved; try again')
    }
  }
  const nextSeason = Math.max(0, ...title.seasons.map((s) => s.number)) + 1
  return (
    <section aria-label="Seasons and episodes">
      <h2>Seasons and episodes</h2>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {title.seasons.map((season) => {
        const nextEpisode = Math.max(0, ...season.episodes.map((e) => e.number)) + 1
        return (
          <div key={season.id} className="season-edit">
            <h3>Season {season.number}</h3>
            <ol className="list">
              {season.episodes.map((ep) => (
                <li key={ep.id} className="row">
                  <span>{ep.number}.</span>
                  <input
                    aria-label={`Name of episode ${ep.number} of season ${season.number}`}
                    defaultValue={ep.name}
                    onBlur={(e) =>
                      e.target.value !== ep.name &&
                      run(() =>
                        api('PATCH', `/api/v1/admin/titles/${title.id}/episodes/${ep.id}`, {
                          name: e.target.value,
                        }),
                      )
                    }
                  />
                  <span className="muted">media {ep.mediaStatus}</span>
                  <span className="muted">id {ep.id}</span>
                  <button
                    type="button"
                    className="danger"
                    onClick={() =>
                      run(() => api('DELETE', `/api/v1/admin/titles/${title.id}/episodes/${ep.id}`))
                    }
                  >
                    Remove
                  </button>
                </li>
              ))}
            </ol>
            <button
              type="button"
              onClick={() =>
                run(() =>
                  api('POST', `/api/v1/admin/titles/${title.id}/seasons/${season.id}/episodes`, {
                    number: nextEpisode,
                    name: `Episode ${nextEpisode}`,
                  }),
                )
              }
            >
              Add episode {nextEpisode}
            </button>
          </div>
        )
      })}
      <button
        type="button"
        onClick={() =>
          run(() => api('POST', `/api/v1/admin/titles/${title.id}/seasons`, { number: nextSeason }))
        }
      >
        Add season {nextSeason}
      </button>
    </section>
  )
}
