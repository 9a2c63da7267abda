import { type FormEvent, useEffect, useState } from 'react'
import { Link, useLocation, useSearchParams } from 'wouter'
import { ApiError, api, type Plan, type Tokens } from '../api'
import { useSession } from '../session'

function ErrorLine({ error }: { error?: string }) {
  return error ? (
    <p className="error" role="alert">
      {error}
    </p>
  ) : null
}

const explain = (e: unknown) => {
  if (!(e instanceof ApiError)) return 'Something went wrong; try again.'
  if (e.code === 'too_many_login_attempts') {
    const wait = Number(e.details?.retryAfterSeconds ?? 60)
    return `Too many attempts. Try again in ${Math.ceil(wait / 60)} minute(s).`
  }
  return e.message
}

export function LoginPage() {
  const session = useSession()
  const [, navigate] = useLocation()
  const [params] = useSearchParams()
  const [error, setError] = useState<string>()
  const [busy, setBusy] = useState(false)
  const next = params.get('next')?.startsWith('/') ? (params.get('next') ?? '/') : '/'

  useEffect(() => {
    if (session.status === 'signed-in') navigate(next)
  }, [session.status, navigate, next])

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault()
    const form = new FormData(e.currentTarget)
    setBusy(true)
    setError(undefined)
    try {
      const tokens = await api<Tokens>('POST', '/api/v1/sessions', {
        email: String(form.get('email')),
        password: String(form.get('password')),
      })
      await session.signIn(tokens)
      navigate(next)
    } catch (err) {
      setError(explain(err))
    } finally {
      setBusy(false)
    }
  }

  return (
    <form className="card auth" onSubmit={submit}>
      <h1>Sign in</h1>
      <label>
        Email
        <input name="email" type="email" autoComplete="email" required />
      </label>
      <label>
        Password
        <input name="password" type="password" autoComplete="current-password" required />
      </label>
      <ErrorLine error={error} />
      <button type="submit" className="primary" disabled={busy}>
        {busy ? 'Signing in…' : 'Sign in'}
      </button>
      <p className="muted">
        New to reel? <Link href="/signup">Create an account</Link>
      </p>
    </form>
  )
}

export function SignUpPage() {
  const session = useSession()
  const [, navigate] = useLocation()
  const [plans, setPlans] = useState<Plan[]>([])
  const [error, setError] = useState<string>()
  const [busy, setBusy] = useState(false)

  useEffect(() => {
    api<{ plans: Plan[] }>('GET', '/api/v1/plans')
      .then((r) => setPlans(r.plans))
      .catch(() => setPlans([]))
  }, [])

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault()
    const form = new FormData(e.currentTarget)
    setBusy(true)
    setError(undefined)
    try {
      const result = await api<{ tokens: Tokens }>('POST', '/api/v1/accounts', {
        email: String(form.get('email')),
        password: String(form.get('password')),
        plan: String(form.get('plan')),
      })
      await session.signIn(result.tokens)
      navigate('/profiles')
    } catch (err) {
      setError(explain(err))
    } finally {
      setBusy(false)
    }
  }

  return (
    <form className="card auth" onSubmit={submit}>
      <h1>Create your account</h1>
      <label>
        Email
        <input name="email" type="email" autoComplete="email" required />
      </label>
      <label>
        Password <span className="muted">(8 characters or more)</span>
        <input name="password" type="password" autoComplete="new-password" minLength={8} required />
      </label>
      <fieldset className="plans">
        <legend>Plan</legend>
        {plans.map((p, i) => (
          <label key={p.id} className="plan">
            <input type="radio" name="plan" value={p.id} defaultChecked={i === plans.length - 1} />
            <strong>{p.name}</strong>
            <span>
              {new Intl.NumberFormat(undefined, { style: 'currency', currency: p.currency }).format(
                p.priceMinor / 100,
              )}
              /month · {p.maxStreams} screen{p.maxStreams > 1 ? 's' : ''} · up to {p.maxHeight}p
            </span>
          </label>
        ))}
      </fieldset>
      <ErrorLine error={error} />
      <button type="submit" className="primary" disabled={busy}>
        {busy ? 'Creating…' : 'Start watching'}
      </button>
      <p className="muted">
        Already a member? <Link href="/login">Sign in</Link>
      </p>
    </form>
  )
}
