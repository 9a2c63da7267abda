import type { ModuleContext } from '../../platform/modules.js'
import type { TitleFacts } from './facts.js'

/**
 * Title facts from the catalog service's in-process API. Until the catalog offers one, no title is
 * known, so none is shown (counting goes on regardless).
 */
export function catalogTitleFacts(_ctx: ModuleContext): TitleFacts {
  return {
    async lookup() {
      return new Map()
    },
  }
}
