import type { ServiceModule } from '../../platform/modules.js'

/** The playback service: play sessions, stream limits, resume state and viewing history. Its routes, consumers and jobs arrive with its issue. */
export const playbackModule: ServiceModule = {
  name: 'playback',
  register() {},
}
