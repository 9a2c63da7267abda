// What the trending bench needs besides plays: a viewer (account, profile, token) and titles the
// catalog knows, so that trending answers are filtered as they are for real viewers.
import { createReel } from '../../src/platform/app.js'
import { loadConfig } from '../../src/platform/config.js'

export interface Seeded {
  token: string
  profileId: string
  /** Ids to play: movies, and series (`series-…`) whose episodes are played. */
  titles: string[]
}

const MOVIES = 1500
const SERIES = 500

export async function seedCatalog(env: Record<string, string>): Promise<Seeded> {
  const reel = await createReel({ config: loadConfig(env), roles: [] })
  try {
    const { account, tokens } = await reel.use('accounts').signUp(
      {
        email: `bench.${Date.now()}@example.com`,
        password: 'correct horse battery',
        plan: 'premium',
        country: 'US',
      },
      { name: 'bench', address: '127.0.0.1' },
    )
    const [profile] = await reel.use('accounts').profiles(account.id)
    const titles = [
      ...Array.from({ length: MOVIES }, (_, i) => `movie-${i}`),
      ...Array.from({ length: SERIES }, (_, i) => `series-${i}`),
    ]
    return { token: tokens.accessToken, profileId: profile?.id ?? '', titles }
  } finally {
    await reel.stop()
  }
}
