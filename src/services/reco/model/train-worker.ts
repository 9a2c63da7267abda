/** Entry of the training worker thread: trains on workerData and posts the model back, its buffers transferred. */
import { parentPort, workerData } from 'node:worker_threads'
import { isAppError } from '../../../platform/errors.js'
import { lowerThreadPriority } from '../../../platform/priority.js'
import { trainModel } from './train.js'
import type { TrainingData, TrainOptions } from './types.js'
import { transferable } from './worker.js'

// Background work: the threads answering requests get the CPU first.
lowerThreadPriority()
const { data, options } = workerData as { data: TrainingData; options: TrainOptions }
try {
  const model = trainModel(data, options)
  parentPort?.postMessage(
    { model },
    transferable([model.perUser, model.perUserScores, model.similar, model.similarScores]),
  )
} catch (e) {
  parentPort?.postMessage({
    error: isAppError(e)
      ? { status: e.status, code: e.code, message: e.message }
      : { message: e instanceof Error ? e.message : String(e) },
  })
}
