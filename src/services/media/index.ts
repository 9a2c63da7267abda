import type { ServiceModule } from '../../platform/modules.js'

/** The media service: uploads, transcode jobs, the parts index, renditions and manifests. Its routes, consumers and jobs arrive with its issue. */
export const mediaModule: ServiceModule = {
  name: 'media',
  register() {},
}
