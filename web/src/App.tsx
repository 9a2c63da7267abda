import { lazy, type ReactNode, Suspense } from 'react'
import { Link, Redirect, Route, Switch, useLocation } from 'wouter'
import { AccountPage } from './pages/Account'
import { LoginPage, SignUpPage } from './pages/Auth'
import { HomePage } from './pages/Home'
import { PersonPage } from './pages/Person'
import { ManageProfilesPage, WhoIsWatchingPage } from './pages/Profiles'
import { SearchPage } from './pages/Search'
import { TitlePage } from './pages/Title'
import { SessionProvider, useSession } from './session'

// The player (hls.js) and the uploader (tus) are large: loaded only when those pages open.
const WatchPage = lazy(() => import('./pages/Watch').then((m) => ({ default: m.WatchPage })))
const AdminPage = lazy(() => import('./pages/Admin').then((m) => ({ default: m.AdminPage })))
const AdminTitlesPage = lazy(() =>
  import('./pages/admin/TitleEditor').then((m) => ({ default: m.AdminTitlesPage })),
)
const AdminTitleEditPage = lazy(() =>
  import('./pages/admin/TitleEditor').then((m) => ({ default: m.AdminTitleEditPage })),
)
const AdminImportPage = lazy(() =>
  import('./pages/admin/CatalogImport').then((m) => ({ default: m.AdminImportPage })),
)

function Shell({ children }: { children: ReactNode }) {
  const session = useSession()
  return (
    <>
      <a href="#main" className="skip-link">
        Skip to content
      </a>
      <header className="nav">
        <Link href="/" className="brand">
          reel
        </Link>
        {session.status === 'signed-in' && (
          <nav>
            <Link href="/">Home</Link>
            <Link href="/search">Search</Link>
            <Link href="/account">Account</Link>
            {session.overview?.account.role === 'admin' && <Link href="/admin">Admin</Link>}
            {session.profile && (
              <Link href="/profiles" className="who" aria-label="Switch profile">
                <span className={`avatar ${session.profile.avatar}`} aria-hidden="true">
                  {session.profile.name.slice(0, 1).toUpperCase()}
                </span>
                {session.profile.name}
              </Link>
            )}
            <button type="button" className="link" onClick={() => session.signOut()}>
              Sign out
            </button>
          </nav>
        )}
      </header>
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<p className="muted center">Loading…</p>}>{children}</Suspense>
      </main>
    </>
  )
}

/** Pages that need an account and a chosen profile. */
function Member({ children, needsProfile = true }: { children: ReactNode; needsProfile?: boolean }) {
  const session = useSession()
  const [location] = useLocation()
  if (session.status === 'loading') return <p className="muted center">Loading…</p>
  if (session.status === 'signed-out') return <Redirect to={`/login?next=${encodeURIComponent(location)}`} />
  if (needsProfile && !session.profile) return <Redirect to="/profiles" />
  return <>{children}</>
}

/** Administrator pages: members see why they cannot use them instead of a broken page. */
function AdminOnly({ children }: { children: ReactNode }) {
  const session = useSession()
  return (
    <Member needsProfile={false}>
      {session.overview?.account.role === 'admin' ? (
        children
      ) : (
        <p className="center" role="alert">
          This page is for administrators. <Link href="/">Go home</Link>
        </p>
      )}
    </Member>
  )
}

export function App() {
  return (
    <SessionProvider>
      <Shell>
        <Switch>
          <Route path="/login" component={LoginPage} />
          <Route path="/signup" component={SignUpPage} />
          <Route path="/profiles">
            <Member needsProfile={false}>
              <WhoIsWatchingPage />
            </Member>
          </Route>
          <Route path="/profiles/manage">
            <Member needsProfile={false}>
              <ManageProfilesPage />
            </Member>
          </Route>
          <Route path="/title/:id">
            <Member>
              <TitlePage />
            </Member>
          </Route>
          <Route path="/people/:id">
            <Member>
              <PersonPage />
            </Member>
          </Route>
          <Route path="/watch/:id">
            <Member>
              <WatchPage />
            </Member>
          </Route>
          <Route path="/search">
            <Member>
              <SearchPage />
            </Member>
          </Route>
          <Route path="/admin">
            <AdminOnly>
              <AdminPage />
            </AdminOnly>
          </Route>
          <Route path="/admin/titles">
            <AdminOnly>
              <AdminTitlesPage />
            </AdminOnly>
          </Route>
          <Route path="/admin/titles/:id">
            <AdminOnly>
              <AdminTitleEditPage />
            </AdminOnly>
          </Route>
          <Route path="/admin/import">
            <AdminOnly>
              <AdminImportPage />
            </AdminOnly>
          </Route>
          <Route path="/account">
            <Member needsProfile={false}>
              <AccountPage />
            </Member>
          </Route>
          <Route path="/">
            <Member>
              <HomePage />
            </Member>
          </Route>
          <Route>
            <p className="center">
              This page does not exist. <Link href="/">Go home</Link>
            </p>
          </Route>
        </Switch>
      </Shell>
    </SessionProvider>
  )
}
