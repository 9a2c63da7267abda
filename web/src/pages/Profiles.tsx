import { type FormEvent, useCallback, useEffect, useState } from 'react'
import { Link, useLocation } from 'wouter'
import { ApiError, api, type Profile } from '../api'
import { useSession } from '../session'

const RATINGS = ['G', 'PG', 'PG-13', 'R', 'NC-17'] as const

function useProfiles() {
  const [profiles, setProfiles] = useState<Profile[]>()
  const [error, setError] = useState<string>()
  const reload = useCallback(async () => {
    try {
      setProfiles((await api<{ profiles: Profile[] }>('GET', '/api/v1/profiles')).profiles)
    } catch (e) {
      setError(e instanceof ApiError ? e.message : 'Could not load profiles')
    }
  }, [])
  useEffect(() => {
    reload()
  }, [reload])
  return { profiles, error, setError, reload }
}

function Avatar({ profile }: { profile: Profile }) {
  return (
    <span className={`avatar big ${profile.avatar}`} aria-hidden="true">
      {profile.name.slice(0, 1).toUpperCase()}
    </span>
  )
}

export function WhoIsWatchingPage() {
  const session = useSession()
  const [, navigate] = useLocation()
  const { profiles, error } = useProfiles()
  return (
    <section className="center">
      <h1>Who’s watching?</h1>
      {error && <p className="error">{error}</p>}
      <ul className="profiles">
        {profiles?.map((p) => (
          <li key={p.id}>
            <button
              type="button"
              className="profile"
              onClick={() => {
                session.chooseProfile(p)
                navigate('/')
              }}
            >
              <Avatar profile={p} />
              <span>{p.name}</span>
              {p.kids && <span className="badge">Kids</span>}
            </button>
          </li>
        ))}
      </ul>
      <Link href="/profiles/manage" className="button">
        Manage profiles
      </Link>
    </section>
  )
}

export function ManageProfilesPage() {
  const session = useSession()
  const { profiles, error, setError, reload } = useProfiles()

  async function run(action: () => Promise<unknown>) {
    setError(undefined)
    try {
      await action()
      await reload()
    } catch (e) {
      setError(e instanceof ApiError ? e.message : 'Something went wrong')
    }
  }

  function add(e: FormEvent<HTMLFormElement>) {
    e.preventDefault()
    const formElement = e.currentTarget
    const form = new FormData(formElement)
    run(async () => {
      await api('POST', '/api/v1/profiles', {
        name: String(form.get('name')),
        kids: form.get('kids') === 'on',
      })
      formElement.reset()
    })
  }

  return (
    <section className="card wide">
      <h1>Manage profiles</h1>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <ul className="list">
        {profiles?.map((p) => (
          <li key={p.id} className="row">
            <Avatar profile={p} />
            <input
              aria-label={`Name of ${p.name}`}
              defaultValue={p.name}
              onBlur={(e) => {
                if (e.target.value !== p.name)
                  run(() => api('PATCH', `/api/v1/profiles/${p.id}`, { name: e.target.value }))
              }}
            />
            <label className="inline">
              <input
                type="checkbox"
                checked={p.kids}
                onChange={(e) =>
                  run(() => api('PATCH', `/api/v1/profiles/${p.id}`, { kids: e.target.checked }))
                }
              />
              Kids
            </label>
            <select
              aria-label={`Maturity limit of ${p.name}`}
              value={p.maturityLimit}
              onChange={(e) =>
                run(() => api('PATCH', `/api/v1/profiles/${p.id}`, { maturityLimit: e.target.value }))
              }
            >
              {RATINGS.map((r) => (
                <option key={r}>{r}</option>
              ))}
            </select>
            <button
              type="button"
              className="danger"
              onClick={() =>
                run(async () => {
                  await api('DELETE', `/api/v1/profiles/${p.id}`)
                  if (session.profile?.id === p.id) session.chooseProfile(undefined)
                })
              }
            >
              Delete
            </button>
          </li>
        ))}
      </ul>
      {profiles && profiles.length < 5 && (
        <form className="row" onSubmit={add}>
          <input name="name" placeholder="New profile name" required maxLength={50} />
          <label className="inline">
            <input type="checkbox" name="kids" /> Kids
          </label>
          <button type="submit" className="primary">
            Add profile
          </button>
        </form>
      )}
      <Link href="/profiles">Done</Link>
    </section>
  )
}
