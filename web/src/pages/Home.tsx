import { useEffect, useState } from 'react'
import { Link } from 'wouter'
import type { HomeRow as ServerRow } from '../../../src/services/reco/service.js'
import { Artwork } from '../Artwork'
import { ApiError, api } from '../api'
import { useSession } from '../session'

/** A home row; a sponsored one (paid placement) is labelled as such. */
type HomeRow = ServerRow & { sponsored?: boolean }

/** A sponsored row leads with its label, then who pays for it ("Sponsored by …") when the row says. */
const headingOf = (row: HomeRow) => (row.sponsored ? (row.reason ?? row.title) : row.title)

/** Marks row headings for Element Timing (bench/web measures when the first one is painted). */
const paintMark = { elementtiming: 'home-row' }

export function HomePage() {
  const session = useSession()
  const [rows, setRows] = useState<HomeRow[]>()
  const [error, setError] = useState<string>()
  const [fallback, setFallback] = useState(false)
  const profileId = session.profile?.id

  useEffect(() => {
    if (!profileId) return
    api<{ rows: HomeRow[]; fallback?: boolean }>('GET', `/api/v1/profiles/${profileId}/home`)
      .then((r) => {
        setRows(r.rows)
        setFallback(r.fallback === true)
      })
      .catch((e) => {
        if (e instanceof ApiError && e.status === 404 && e.code === 'route_not_found') setRows([])
        else setError(e instanceof ApiError ? e.message : 'Could not load your home page')
      })
  }, [profileId])

  const entitled = session.overview?.entitlements.active
  return (
    <section>
      {!entitled && (
        <p className="notice">
          Your account has no active plan. <Link href="/account">Choose a plan</Link> to start watching.
        </p>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {fallback && (
        <p className="notice">Some rows are not personalised right now; they will be again shortly.</p>
      )}
      {rows?.length === 0 && (
        <div className="hero">
          <h1>Welcome, {session.profile?.name}</h1>
          <p className="muted">Nothing to show yet: the catalog fills this page as titles are added.</p>
        </div>
      )}
      {rows?.map((row) => (
        <section key={row.id} className="row-section" aria-label={headingOf(row)}>
          <h2 {...paintMark}>
            {row.sponsored && <span className="badge sponsored">Sponsored</span>}
            {row.sponsored && headingOf(row) === 'Sponsored' ? null : headingOf(row)}
          </h2>
          {row.reason && !row.sponsored && <p className="muted">{row.reason}</p>}
          <ul className="carousel">
            {row.items.map((item) => (
              <li key={item.titleId} className="tile">
                <Link href={`/title/${item.titleId}`} className="tile-link">
                  <Artwork id={item.titleId} title={item.title} src={item.artwork} />
                  {/* A generated card already shows the name; the link keeps it for screen readers. */}
                  <span className={item.artwork ? undefined : 'visually-hidden'}>{item.title}</span>
                </Link>
                {item.progress !== undefined && (
                  <progress max={1} value={item.progress} aria-label="Watched" />
                )}
              </li>
            ))}
          </ul>
        </section>
      ))}
    </section>
  )
}
