import type { ServiceModule } from '../../platform/modules.js'

/** The cdn service: the edge registry, steering and the built-in edge. Its routes, consumers and jobs arrive with its issue. */
export const cdnModule: ServiceModule = {
  name: 'cdn',
  register() {},
}
