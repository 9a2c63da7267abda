import type { ServiceModule } from '../../platform/modules.js'
import { recoRoutes } from './routes.js'
import { HomePage } from './service.js'

/** The reco service: the home page rows of a profile (precomputed recommendations arrive with their issue). */
export const recoModule: ServiceModule = {
  name: 'reco',
  register(ctx) {
    const home = new HomePage({
      catalog: () => ctx.use('catalog'),
      playback: () => ctx.use('playback'),
      trends: () => ctx.use('trends'),
      log: ctx.log.child({ service: 'reco' }),
    })
    recoRoutes(ctx, home)
  },
}
