import { stat } from 'node:fs/promises'
import path from 'node:path'
import { type Command, InvalidArgumentError, Option } from 'commander'
import { createReel } from '../platform/app.js'
import { loadConfig } from '../platform/config.js'
import { errorMessage } from '../platform/errors.js'
import { scoreSplit, stratifiedSplit, trainingPart } from '../services/reco/model/evaluate.js'
import { readMovieLens } from '../services/reco/model/movielens.js'
import { ALGORITHMS } from '../services/reco/model/train.js'
import type { Algorithm } from '../services/reco/model/types.js'
import { trainInWorker } from '../services/reco/model/worker.js'
import { CliError } from './client.js'

/** Microsoft Recommenders' published MovieLens-100K comparison (top-10, same protocol). */
const PUBLISHED: ReadonlyArray<[string, number, number, number, number]> = [
  ['BiVAE', 0.146, 0.475, 0.412, 0.219],
  ['BPR', 0.132, 0.442, 0.388, 0.213],
  ['LightGCN', 0.089, 0.42, 0.38, 0.144],
  ['NCF', 0.108, 0.396, 0.347, 0.181],
  ['SAR', 0.111, 0.382, 0.331, 0.176],
  ['ALS', 0.005, 0.044, 0.048, 0.018],
]

const K = 10

function parseAlgorithms(value: string): Algorithm[] {
  if (value === 'all') return [...ALGORITHMS]
  const algorithm = ALGORITHMS.find((a) => a === value)
  if (!algorithm) throw new InvalidArgumentError(`choose one of ${ALGORITHMS.join(', ')} or all`)
  return [algorithm]
}

function positiveNumber(value: string): number {
  const n = Number(value)
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError(`"${value}" is not a positive number`)
  return n
}

function nonNegativeInteger(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`"${value}" is not a whole number`)
  return n
}

async function requireMovieLens(dir: string): Promise<void> {
  const file = path.join(dir, 'u.data')
  const found = await stat(file).catch(() => undefined)
  if (!found?.isFile())
    throw new CliError(
      `no MovieLens-100K at ${path.resolve(dir)}: ${file} is missing (give the ml-100k folder)`,
    )
}

const row = (name: string, cells: Array<string | number>) =>
  `${name.padEnd(16)}${cells.map((c) => (typeof c === 'number' ? c.toFixed(3) : c).padStart(10)).join('')}`

/** `reel reco …`: offline jobs of the recommendation models. */
export function registerRecoCommands(cli: Command): void {
  const reco = cli.command('reco').description('recommendations: offline training and evaluation')
  registerTrainCommand(reco)
  reco
    .command('eval')
    .description(
      "train on 75% of each movie's MovieLens-100K ratings and score the top 10 against the rest (Microsoft Recommenders' protocol)",
    )
    .requiredOption('--movielens <dir>', 'folder holding u.data (and u.item) of MovieLens-100K')
    .addOption(
      new Option('--algorithm <name>', `${ALGORITHMS.join(', ')} or all`)
        .argParser(parseAlgorithms)
        .default([...ALGORITHMS], 'all'),
    )
    .option('--seed <n>', 'seed of the split', nonNegativeInteger, 42)
    .option('--lambda <x>', "EASE's L2 regularisation (default: the model's)", positiveNumber)
    .option('--neighbours <n>', "item-kNN's neighbourhood size (default: the model's)", positiveNumber)
    .action(
      async (opts: {
        movielens: string
        algorithm: Algorithm[]
        seed: number
        lambda?: number
        neighbours?: number
      }) => {
        await requireMovieLens(opts.movielens)
        const { ratings } = await readMovieLens(opts.movielens).catch((e: unknown) => {
          throw new CliError(
            `cannot read MovieLens-100K at ${path.resolve(opts.movielens)}: ${errorMessage(e)}`,
          )
        })
        const split = stratifiedSplit(ratings, 0.75, opts.seed)
        console.log(
          `MovieLens-100K: ${ratings.users.length} ratings, ${ratings.nUsers} users, ${ratings.nItems} movies; ` +
            `split 75/25 by movie (seed ${opts.seed}): ${split.train.length} train, ${split.test.length} test; ` +
            `top ${K}, seen movies removed, every test rating relevant ` +
            "(the split's per-movie sizes are Python's; its shuffle is reel's own seeded one, not numpy's)",
        )
        console.log(row('algorithm', ['MAP', `nDCG@${K}`, `Prec@${K}`, `Recall@${K}`, 'train s']))
        for (const algorithm of opts.algorithm) {
          // The same path the service takes: a worker thread, input buffers transferred.
          const model = await trainInWorker(trainingPart(ratings, split), {
            algorithm,
            topN: K,
            topSimilar: 0,
            ...(opts.lambda !== undefined ? { lambda: opts.lambda } : {}),
            ...(opts.neighbours !== undefined ? { neighbours: Math.round(opts.neighbours) } : {}),
          })
          const m = scoreSplit(model, ratings, split, K)
          console.log(
            row(`reel ${algorithm}`, [
              m.map,
              m.ndcg,
              m.precision,
              m.recall,
              (model.trainMs / 1000).toFixed(2),
            ]),
          )
        }
        console.log('published (Microsoft Recommenders, same protocol):')
        for (const [name, ...metrics] of PUBLISHED) console.log(row(`  ${name}`, metrics))
      },
    )
}

/** `reel reco train`: one training run on the server machine, against the configured engines. */
function registerTrainCommand(reco: Command): void {
  reco
    .command('train')
    .description(
      "train recommendations now: every profile's precomputed rows (top picks, because you watched, others also watched, people) and the titles' neighbours, written to the database; the running servers serve them at once",
    )
    .action(async () => {
      const reel = await createReel({ config: { ...loadConfig(process.env), logLevel: 'warn' }, roles: [] })
      try {
        const service = reel.use('reco')
        const report = await service.trainer.run()
        if (!report)
          throw new CliError('a training run is going on already (another process holds the lease)')
        await service.saveFallback()
        const mb = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MiB`
        console.log(
          `trained ${report.algorithm} on ${report.interactions} interactions of ${report.profiles} profiles over ${report.titles} titles in ${(report.ms / 1000).toFixed(1)} s (model ${(report.modelMs / 1000).toFixed(1)} s, content neighbours ${(report.contentMs / 1000).toFixed(1)} s; ${mb(report.rssBytes)} resident)`,
        )
      } finally {
        await reel.stop()
      }
    })
}
