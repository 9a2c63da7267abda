// pacedLoad's worker (bench/lib.ts): runs one paced load on a heap of its own and sends back the figures.
import { parentPort, workerData } from 'node:worker_threads'
import { transferable } from '../src/services/reco/model/worker.js'
import { type PacedJob, runPaced } from './lib.js'

try {
  const run = await runPaced(workerData as PacedJob)
  parentPort?.postMessage(run, transferable([run.latencies, run.lateness]))
} catch (e) {
  parentPort?.postMessage({ error: e instanceof Error ? e.message : String(e) })
}
