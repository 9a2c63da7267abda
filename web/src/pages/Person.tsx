import { useEffect, useState } from 'react'
import { Link, useParams } from 'wouter'
import type { PersonView } from '../../../src/services/catalog/service.js'
import { Artwork } from '../Artwork'
import { ApiError, api } from '../api'
import { useSession } from '../session'

type Credit = PersonView['credits'][number]

const ROLE_HEADINGS: Record<Credit['role'], string> = {
  director: 'Directed',
  cast: 'Appears in',
  writer: 'Wrote',
  creator: 'Created',
  producer: 'Produced',
}

/** A person and their filmography: the titles of theirs this profile may watch, by role. */
export function PersonPage() {
  const { id } = useParams<{ id: string }>()
  const session = useSession()
  const [person, setPerson] = useState<PersonView>()
  const [error, setError] = useState<string>()
  const profileId = session.profile?.id

  useEffect(() => {
    if (!id || !profileId) return
    setPerson(undefined)
    setError(undefined)
    api<PersonView>('GET', `/api/v1/people/${encodeURIComponent(id)}?profileId=${profileId}`)
      .then(setPerson)
      .catch((e) => setError(e instanceof ApiError ? e.message : 'Could not load this person'))
  }, [id, profileId])

  if (error)
    return (
      <p className="error center" role="alert">
        {error} <Link href="/">Go home</Link>
      </p>
    )
  if (!person) return <p className="muted center">Loading…</p>
  const roles = (Object.keys(ROLE_HEADINGS) as Credit['role'][]).flatMap((role) => {
    const credits = person.credits.filter((c) => c.role === role)
    return credits.length > 0 ? [{ role, credits }] : []
  })
  return (
    <article className="person-page">
      <h1>{person.name}</h1>
      {roles.length === 0 && (
        <p className="muted">None of {person.name}’s titles can be watched on this profile here.</p>
      )}
      {roles.map(({ role, credits }) => (
        <section key={role} aria-label={`${ROLE_HEADINGS[role]} (${credits.length})`}>
          <h2>
            {ROLE_HEADINGS[role]} <span className="muted">{credits.length}</span>
          </h2>
          <ul className="grid">
            {credits.map(({ title, character }) => {
              const art = title.artwork.poster ?? title.artwork.backdrop
              return (
                <li key={title.id} className="tile">
                  <Link href={`/title/${title.id}`} className="tile-link">
                    <Artwork id={title.id} title={title.title} src={art} />
                    <span className={art ? undefined : 'visually-hidden'}>{title.title}</span>
                    <span className="muted">
                      {[title.year, character && `as ${character}`, title.maturityRating]
                        .filter(Boolean)
                        .join(' · ')}
                    </span>
                  </Link>
                </li>
              )
            })}
          </ul>
        </section>
      ))}
    </article>
  )
}
