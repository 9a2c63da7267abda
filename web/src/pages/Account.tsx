import { useCallback, useEffect, useState } from 'react'
import { ApiError, api, date, type Invoice, money, type Plan, type SessionView } from '../api'
import { useSession } from '../session'

export function AccountPage() {
  const session = useSession()
  const [plans, setPlans] = useState<Plan[]>([])
  const [invoices, setInvoices] = useState<Invoice[]>([])
  const [devices, setDevices] = useState<SessionView[]>([])
  const [error, setError] = useState<string>()
  const [notice, setNotice] = useState<string>()

  const load = useCallback(async () => {
    const [p, i, d] = await Promise.all([
      api<{ plans: Plan[] }>('GET', '/api/v1/plans'),
      api<{ invoices: Invoice[] }>('GET', '/api/v1/invoices'),
      api<{ sessions: SessionView[] }>('GET', '/api/v1/sessions'),
    ])
    setPlans(p.plans)
    setInvoices(i.invoices)
    setDevices(d.sessions)
  }, [])

  useEffect(() => {
    load().catch((e) => setError(e instanceof ApiError ? e.message : 'Could not load your account'))
  }, [load])

  async function run(action: () => Promise<unknown>, done: string) {
    setError(undefined)
    setNotice(undefined)
    try {
      await action()
      await Promise.all([session.reload(), load()])
      setNotice(done)
    } catch (e) {
      setError(e instanceof ApiError ? e.message : 'Something went wrong')
    }
  }

  const overview = session.overview
  if (!overview) return null
  const sub = overview.subscription
  return (
    <section className="card wide">
      <h1>Account</h1>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {notice && <p className="notice">{notice}</p>}
      <h2>Membership</h2>
      <p>
        {overview.account.email} · {overview.account.country}
        {overview.account.role === 'admin' && <span className="badge">Admin</span>}
      </p>
      {sub ? (
        <p>
          <strong>{sub.plan.name}</strong> — {money(sub.plan.priceMinor, sub.plan.currency)}/month ·{' '}
          <span className={`status ${sub.status}`}>{sub.status.replace('_', ' ')}</span> ·{' '}
          {sub.cancelAtPeriodEnd ? 'ends' : 'renews'} {date(sub.currentPeriodEnd)}
          {sub.creditMinor > 0 && <> · credit {money(sub.creditMinor, sub.plan.currency)}</>}
        </p>
      ) : (
        <p>No plan: choose one to start watching.</p>
      )}
      <div className="plans-row">
        {plans.map((p) => (
          <button
            key={p.id}
            type="button"
            className={sub?.plan.id === p.id && sub.status !== 'canceled' ? 'plan current' : 'plan'}
            disabled={sub?.plan.id === p.id && sub.status !== 'canceled' && !sub.cancelAtPeriodEnd}
            onClick={() =>
              run(() => api('PUT', '/api/v1/subscription', { plan: p.id }), `You are on ${p.name}.`)
            }
          >
            <strong>{p.name}</strong>
            <span>{money(p.priceMinor, p.currency)}/mo</span>
            <span>
              {p.maxStreams} screen{p.maxStreams > 1 ? 's' : ''} · {p.maxHeight}p
            </span>
          </button>
        ))}
      </div>
      {sub && sub.status !== 'canceled' && !sub.cancelAtPeriodEnd && (
        <button
          type="button"
          className="danger"
          onClick={() =>
            run(
              () => api('POST', '/api/v1/subscription/cancel'),
              'Your membership will end at the end of this period.',
            )
          }
        >
          Cancel membership
        </button>
      )}
      <h2>Invoices</h2>
      {invoices.length === 0 ? (
        <p className="muted">No invoices yet.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Number</th>
              <th>Date</th>
              <th>Period</th>
              <th>Amount</th>
              <th>Status</th>
            </tr>
          </thead>
          <tbody>
            {invoices.map((i) => (
              <tr key={i.id}>
                <td>{i.number}</td>
                <td>{date(i.createdAt)}</td>
                <td>
                  {date(i.periodStart)} – {date(i.periodEnd)}
                </td>
                <td>{money(i.totalMinor, i.currency)}</td>
                <td className={`status ${i.status}`}>{i.status}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Devices</h2>
      <ul className="list">
        {devices.map((d) => (
          <li key={d.id}>
            {d.device}{' '}
            <span className="muted">
              · {d.address} · last used {date(d.lastUsedAt)}
            </span>
            {d.current && <span className="badge">This device</span>}
          </li>
        ))}
      </ul>
      <button
        type="button"
        onClick={async () => {
          await api('DELETE', '/api/v1/sessions').catch(() => undefined)
          await session.signOut()
        }}
      >
        Sign out of all devices
      </button>
    </section>
  )
}
