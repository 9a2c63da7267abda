import { createRequire } from 'node:module'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import { AppError } from '../../../platform/errors.js'
import type { TrainedModel, TrainingData, TrainOptions } from './types.js'

/**
 * How to start the worker `name` that sits next to the module at `from` (its import.meta.url). Run
 * from the TypeScript sources (tsx, vitest) the worker is a .ts file and must register tsx's loader
 * in its own thread first (Node 20 does not pass a parent's loader hooks, nor --import in execArgv,
 * to workers); run from dist/ it is plain JavaScript next to that module.
 */
export function workerScript(from: string, name: string): { script: string | URL; eval: boolean } {
  if (!from.endsWith('.ts')) return { script: new URL(`./${name}.js`, from), eval: false }
  // tsx is resolved from this file, not from the working directory, so `reel` works from any folder.
  const tsx = tsxEsmApi()
  const entry = new URL(`./${name}.ts`, from).href
  return {
    script: `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}) })`,
    eval: true,
  }
}

/** The ESM build of tsx's API (its `import` condition; require.resolve would pick the CommonJS one). */
function tsxEsmApi(): string {
  if (typeof import.meta.resolve === 'function') return import.meta.resolve('tsx/esm/api')
  const root = path.dirname(createRequire(import.meta.url).resolve('tsx/package.json'))
  return pathToFileURL(path.join(root, 'dist/esm/api/index.mjs')).href
}

/** The distinct, non-shared buffers under some typed arrays (a buffer may be listed once only). */
export function transferable(arrays: ReadonlyArray<{ buffer: ArrayBufferLike } | undefined>): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>()
  for (const array of arrays)
    if (array?.buffer instanceof ArrayBuffer && array.buffer.byteLength > 0) buffers.add(array.buffer)
  return [...buffers]
}

type Reply = { model: TrainedModel } | { error: { status?: number; code?: string; message: string } }

/**
 * trainModel in a worker thread, so the caller's event loop stays free while the model trains.
 * The input arrays' buffers are transferred, not copied: after the call they are detached (empty)
 * in the caller; pass copies to keep them. The model's arrays come back transferred as well.
 * Aborting `signal` (a shutdown, a newer run) terminates the worker and rejects with its reason.
 */
export function trainInWorker(
  data: TrainingData,
  options: TrainOptions,
  { signal }: { signal?: AbortSignal } = {},
): Promise<TrainedModel> {
  if (signal?.aborted) return Promise.reject(abortReason(signal))
  const buffers = transferable([data.users, data.items, data.weights])
  return new Promise<TrainedModel>((resolve, reject) => {
    const { script, eval: isCode } = workerScript(import.meta.url, 'train-worker')
    const worker = new Worker(script, { eval: isCode, workerData: { data, options }, transferList: buffers })
    let settled = false
    const settle = (finish: () => void) => {
      if (settled) return
      settled = true
      signal?.removeEventListener('abort', onAbort)
      finish()
    }
    const onAbort = () =>
      settle(() => {
        void worker.terminate()
        reject(abortReason(signal))
      })
    signal?.addEventListener('abort', onAbort, { once: true })
    worker.once('message', (reply: Reply) =>
      settle(() => {
        if ('model' in reply) resolve(reply.model)
        else {
          const { status, code, message } = reply.error
          reject(
            status !== undefined && code !== undefined
              ? new AppError(status, code, message)
              : new Error(message),
          )
        }
      }),
    )
    worker.once('error', (e) => settle(() => reject(e)))
    worker.once('exit', (code) =>
      settle(() => reject(new Error(`the training worker exited (code ${code}) without a model`))),
    )
  })
}

function abortReason(signal: AbortSignal | undefined): unknown {
  return signal?.reason ?? new Error('training aborted')
}
