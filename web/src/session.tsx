import { createContext, type ReactNode, useCallback, useContext, useEffect, useState } from 'react'
import {
  type Account,
  api,
  type Entitlement,
  type Profile,
  refreshSession,
  type Subscription,
  setAccessToken,
  type Tokens,
} from './api'

interface Overview {
  account: Account
  subscription: Subscription | null
  entitlements: Entitlement
}

interface SessionState {
  status: 'loading' | 'signed-out' | 'signed-in'
  overview?: Overview
  profile?: Profile
  signIn(tokens: Tokens): Promise<void>
  signOut(): Promise<void>
  chooseProfile(profile: Profile | undefined): void
  reload(): Promise<void>
}

const SessionContext = createContext<SessionState | undefined>(undefined)
const PROFILE_KEY = 'reel.profile'

export function SessionProvider({ children }: { children: ReactNode }) {
  const [status, setStatus] = useState<SessionState['status']>('loading')
  const [overview, setOverview] = useState<Overview>()
  const [profile, setProfile] = useState<Profile>()

  const load = useCallback(async () => {
    const next = await api<Overview>('GET', '/api/v1/account')
    setOverview(next)
    const profiles = (await api<{ profiles: Profile[] }>('GET', '/api/v1/profiles')).profiles
    const saved = localStorage.getItem(PROFILE_KEY)
    setProfile(profiles.find((p) => p.id === saved))
    setStatus('signed-in')
  }, [])

  useEffect(() => {
    refreshSession().then((ok) =>
      ok ? load().catch(() => setStatus('signed-out')) : setStatus('signed-out'),
    )
  }, [load])

  const value: SessionState = {
    status,
    overview,
    profile,
    async signIn(tokens) {
      setAccessToken(tokens.accessToken)
      await load()
    },
    async signOut() {
      await api('DELETE', '/api/v1/sessions/current').catch(() => undefined)
      setAccessToken(undefined)
      localStorage.removeItem(PROFILE_KEY)
      setOverview(undefined)
      setProfile(undefined)
      setStatus('signed-out')
    },
    chooseProfile(p) {
      if (p) localStorage.setItem(PROFILE_KEY, p.id)
      else localStorage.removeItem(PROFILE_KEY)
      setProfile(p)
    },
    reload: load,
  }
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>
}

export function useSession(): SessionState {
  const session = useContext(SessionContext)
  if (!session) throw new Error('useSession outside SessionProvider')
  return session
}
