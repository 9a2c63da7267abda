// What the trending bench needs besides plays: a viewer (account, profile, token) and titles the
// catalog knows, so that trending answers are filtered as they are for real viewers.
import { createReel } from '../../src/platform/app.js'
import { loadConfig } from '../../src/platform/config.js'
import type { PlaybackEventBase } from '../../src/services/playback/events.js'

/** What a playback event says of its title. */
export type Playable = Pick<PlaybackEventBase, 'titleId' | 'titleType' | 'seriesId' | 'seasonId'>

export interface Seeded {
  token: string
  profileId: string
  /** Movies and series episodes to play, most popular first. */
  titles: Playable[]
}

const MOVIES = 300
const SERIES = 100

export async function seedCatalog(env: Record<string, string>): Promise<Seeded> {
  const reel = await createReel({ config: loadConfig(env), roles: [] })
  try {
    const accounts = reel.use('accounts')
    const { account, tokens } = await accounts.signUp(
      {
        email: `bench.${Date.now()}@example.com`,
        password: 'correct horse battery',
        plan: 'premium',
        country: 'US',
      },
      { name: 'bench', address: '127.0.0.1' },
    )
    const [profile] = await accounts.profiles(account.id)
    const catalog = reel.use('catalog')
    const titles: Playable[] = []
    for (let i = 0; i < MOVIES + SERIES; i++) {
      const movie = i % 4 !== 3 || i >= 4 * SERIES
      const rating = (['G', 'PG', 'PG-13', 'R'] as const)[i % 4] ?? 'PG'
      const common = {
        title: `Bench title ${i}`,
        maturityRating: rating,
        availability: [{ region: i % 7 === 0 ? 'GB' : '*' }],
      }
      if (movie) {
        const created = await catalog.create({ type: 'movie', runtimeMin: 90 + (i % 60), ...common })
        titles.push({ titleId: created.id, titleType: 'movie', seriesId: null, seasonId: null })
      } else {
        const created = await catalog.create({
          type: 'series',
          ...common,
          seasons: [
            {
              number: 1,
              episodes: [
                { number: 1, runtimeMin: 45 },
                { number: 2, runtimeMin: 45 },
              ],
            },
          ],
        })
        const season = created.seasons[0]
        titles.push({
          titleId: season?.episodes[0]?.id ?? created.id,
          titleType: 'episode',
          seriesId: created.id,
          seasonId: season?.id ?? created.id,
        })
      }
    }
    return { token: tokens.accessToken, profileId: profile?.id ?? '', titles }
  } finally {
    await reel.stop()
  }
}
