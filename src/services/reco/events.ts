/** Events the reco service publishes. */

/**
 * A training run wrote every profile's module (from any process, `reel reco train` included): each
 * reco process reads modules of the new run from then on (its cache keys carry the run id).
 */
export const TRAINING_FINISHED = 'reco.training.finished'

export interface TrainingFinished {
  runId: string
}
