import { useEffect, useState } from 'react'
import { Link, useParams } from 'wouter'
import type { TitleDetail } from '../../../src/services/catalog/service.js'
import type { ProgressView } from '../../../src/services/playback/service.js'
import { artBackground } from '../Artwork'
import { ApiError, api } from '../api'
import { useSession } from '../session'

const minutes = (m: number | null) =>
  m ? `${Math.floor(m / 60) ? `${Math.floor(m / 60)} h ` : ''}${m % 60} min` : ''

type Thumb = 'up' | 'down'

/**
 * Thumbs up / down for this profile; pressing the chosen thumb again takes the rating back. The
 * buttons change at once and go back, with a message, when the server refuses.
 */
function Rating({ profileId, titleId }: { profileId: string; titleId: string }) {
  const [rating, setRating] = useState<Thumb | null>(null)
  const [error, setError] = useState<string>()
  const path = `/api/v1/profiles/${profileId}/ratings/${titleId}`

  useEffect(() => {
    api<{ rating: Thumb | null }>('GET', path)
      .then((r) => setRating(r.rating ?? null))
      .catch(() => setRating(null))
  }, [path])

  async function rate(thumb: Thumb) {
    const before = rating
    const next = rating === thumb ? null : thumb
    setRating(next)
    setError(undefined)
    try {
      if (next) await api('PUT', path, { rating: next })
      else await api('DELETE', path)
    } catch (e) {
      setRating(before)
      setError(e instanceof ApiError ? e.message : 'Your rating was not saved; try again')
    }
  }

  return (
    <fieldset className="thumbs">
      <legend className="visually-hidden">Rate this title</legend>
      <button
        type="button"
        className="thumb"
        aria-pressed={rating === 'up'}
        onClick={() => rate('up')}
        title="I like this"
      >
        <span aria-hidden="true">👍</span> I like this
      </button>
      <button
        type="button"
        className="thumb"
        aria-pressed={rating === 'down'}
        onClick={() => rate('down')}
        title="Not for me"
      >
        <span aria-hidden="true">👎</span> Not for me
      </button>
      {error && (
        <span className="error" role="alert">
          {error}
        </span>
      )}
    </fieldset>
  )
}

/**
 * The episode a series' play button starts: the one in progress, else the one after the last
 * finished, else the first (only episodes that can be played now).
 */
function seriesPlay(title: TitleDetail, history: ProgressView[]) {
  const order = title.seasons
    .toSorted((a, b) => a.number - b.number)
    .flatMap((s) => s.episodes.toSorted((a, b) => a.number - b.number).map((e) => ({ e, season: s.number })))
  const name = (p: { e: { number: number }; season: number }) => `S${p.season}:E${p.e.number}`
  const playable = (p: (typeof order)[number]) => p.e.mediaStatus === 'available'
  const last = history.find((h) => h.seriesId === title.id && h.episodeId)
  const at = last ? order.findIndex((p) => p.e.id === last.episodeId) : -1
  const current = order[at]
  if (last && current && !last.completed && playable(current))
    return { episodeId: current.e.id, label: `Resume ${name(current)}` }
  const next = at >= 0 ? order.slice(at + 1).find(playable) : undefined
  if (next) return { episodeId: next.e.id, label: `Play next: ${name(next)}` }
  const first = order.find(playable)
  return first ? { episodeId: first.e.id, label: `Play ${name(first)}` } : undefined
}

type Credit = TitleDetail['credits'][number]

/** One line of people with a role, each linking to their page (with their character, for the cast). */
function People({ label, credits }: { label: string; credits: Credit[] }) {
  if (credits.length === 0) return null
  return (
    <p>
      <span className="muted">{label}: </span>
      {credits.map((c, i) => (
        <span key={`${c.personId}-${c.role}`}>
          {i > 0 && ', '}
          <Link href={`/people/${c.personId}`}>{c.name}</Link>
          {c.character && <span className="muted"> ({c.character})</span>}
        </span>
      ))}
    </p>
  )
}

export function TitlePage() {
  const { id } = useParams<{ id: string }>()
  const session = useSession()
  const [title, setTitle] = useState<TitleDetail>()
  const [history, setHistory] = useState<ProgressView[]>([])
  const [error, setError] = useState<string>()
  const profileId = session.profile?.id

  useEffect(() => {
    if (!id || !profileId) return
    api<TitleDetail>('GET', `/api/v1/titles/${id}?profileId=${profileId}`)
      .then(setTitle)
      .catch((e) => setError(e instanceof ApiError ? e.message : 'Could not load this title'))
    api<{ items: ProgressView[] }>('GET', `/api/v1/profiles/${profileId}/history?limit=100`)
      .then((r) => setHistory(r.items))
      .catch(() => setHistory([]))
  }, [id, profileId])

  if (error)
    return (
      <p className="error center" role="alert">
        {error}
      </p>
    )
  if (!title) return <p className="muted center">Loading…</p>
  const directors = title.credits.filter((c) => c.role === 'director')
  const cast = title.credits.filter((c) => c.role === 'cast').sort((a, b) => a.order - b.order)
  const art = title.artwork.backdrop ?? title.artwork.poster
  const playable = title.mediaStatus === 'available'
  const progress = new Map(history.map((p) => [p.episodeId ?? p.titleId, p]))
  const own = progress.get(title.id)
  const episodePlay = title.type === 'series' ? seriesPlay(title, history) : undefined
  return (
    <article className="title-page">
      <div
        className="backdrop"
        style={art ? { backgroundImage: `url(${art})` } : { background: artBackground(title.id) }}
      />
      <h1>{title.title}</h1>
      {session.overview?.account.role === 'admin' && (
        <Link href={`/admin/titles/${title.id}`} className="edit-link">
          Edit details
        </Link>
      )}
      <p className="facts">
        {[
          title.year,
          title.maturityRating,
          minutes(title.runtimeMin),
          title.genres.map((g) => g.name).join(', '),
        ]
          .filter(Boolean)
          .join(' · ')}
      </p>
      {title.type === 'movie' &&
        (playable ? (
          <Link href={`/watch/${title.id}`} className="button primary play">
            ▶ {own && !own.completed ? 'Resume' : 'Play'}
          </Link>
        ) : (
          <p className="muted">Coming soon: this title is not playable yet.</p>
        ))}
      {episodePlay && (
        <Link href={`/watch/${title.id}?episode=${episodePlay.episodeId}`} className="button primary play">
          ▶ {episodePlay.label}
        </Link>
      )}
      {own && title.type === 'movie' && own.durationMs > 0 && (
        <progress max={1} value={own.positionMs / own.durationMs} aria-label="Watched" />
      )}
      {profileId && <Rating profileId={profileId} titleId={title.id} />}
      {title.synopsis && <p className="synopsis">{title.synopsis}</p>}
      <People label="Director" credits={directors} />
      <People label="Created by" credits={title.credits.filter((c) => c.role === 'creator')} />
      <People label="Cast" credits={cast.slice(0, 12)} />
      <People label="Writers" credits={title.credits.filter((c) => c.role === 'writer')} />
      {title.seasons.map((season) => (
        <section key={season.id}>
          <h2>Season {season.number}</h2>
          <ol className="episodes">
            {season.episodes.map((ep) => {
              const p = progress.get(ep.id)
              return (
                <li key={ep.id}>
                  {ep.mediaStatus === 'available' ? (
                    <Link href={`/watch/${title.id}?episode=${ep.id}`}>
                      {ep.number}. {ep.name}
                    </Link>
                  ) : (
                    <span className="muted">
                      {ep.number}. {ep.name} (coming soon)
                    </span>
                  )}
                  {ep.synopsis && <p className="muted">{ep.synopsis}</p>}
                  {p && p.durationMs > 0 && (
                    <progress
                      max={1}
                      value={p.completed ? 1 : p.positionMs / p.durationMs}
                      aria-label="Watched"
                    />
                  )}
                </li>
              )
            })}
          </ol>
        </section>
      ))}
    </article>
  )
}
