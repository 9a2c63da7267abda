import type { Auth } from '../../platform/auth.js'
import type { Profile } from '../accounts/service.js'

export interface HomeRow {
  id: string
  kind: string
  title: string
  reason?: string
  items: { titleId: string; title: string; artwork?: string; progress?: number }[]
}

/**
 * A profile's home page. Rows come from the services that know them (continue watching from
 * playback, new titles and genres from the catalog, trending, recommendations); each source is added
 * as its service lands, and a profile with nothing to show gets an empty page, not an error.
 */
export class HomePage {
  async rows(_auth: Auth, _profile: Profile): Promise<HomeRow[]> {
    return []
  }
}
