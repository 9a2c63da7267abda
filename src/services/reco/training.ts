import { setImmediate as yieldToEvents } from 'node:timers/promises'
import { conflict } from '../../platform/errors.js'
import { newId } from '../../platform/ids.js'
import type { Logger } from '../../platform/log.js'
import { counter, gauge, histogram } from '../../platform/metrics.js'
import type { Algorithm, ItemFeatures, TrainedModel, TrainingData, TrainOptions } from './model/types.js'
import {
  emptyModule,
  historyRows,
  type Interaction,
  interactionWeight,
  NEIGHBOURS,
  type Neighbours,
  type ProfileFacts,
  type ProfileModule,
  type Rating,
  ROW_LENGTH,
  scaleScores,
} from './rules.js'
import type { RecoStore } from './store.js'
import type { RecoTitle, TitleIndex } from './titles.js'

/** Trains a model off the event loop (a worker thread). */
export type TrainFn = (data: TrainingData, options: TrainOptions) => Promise<TrainedModel>
/** Content neighbours of every item: row-major, k per item, -1 where fewer exist. */
export type ContentFn = (features: ItemFeatures[], k: number) => Promise<Int32Array>

export interface TrainerDeps {
  store: RecoStore
  titles: TitleIndex
  /**
   * Recomputes a module written after the run read its facts (a play or rating handled meanwhile),
   * with the run's top picks in it; false when the profile is gone.
   */
  recompute: (trained: ProfileModule) => Promise<boolean>
  /** Tells every reco process that the run finished (their cached modules are of an older run). */
  announce: (runId: string) => Promise<void>
  train: TrainFn
  content: ContentFn
  log: Logger
  now: () => number
  algorithm: Algorithm
}

export interface TrainReport {
  runId: string
  algorithm: Algorithm
  profiles: number
  titles: number
  interactions: number
  /** Wall time of the whole run, and of the model's training (in its worker) alone. */
  ms: number
  modelMs: number
  contentMs: number
  /** Resident set size seen at the end of the run (the worker's memory is the process's). */
  rssBytes: number
}

/** Top picks kept per profile: enough for the row after the page rules drop some. */
const TOP_N = ROW_LENGTH * 3
const PAGE = 2_000
const WRITE_BATCH = 50
/** Profiles whose modules are built between two turns of the event loop (the API keeps answering). */
const YIELD_EVERY = 20
/** A run holds the lease this long; a crashed run's lease lapses. */
const LEASE_MS = 30 * 60_000
/** Plays and ratings arrived since the latest run started, counted by every process (reco_state). */
const EVENTS_SINCE_RUN = 'events_since_run'

const runs = counter('reco_training_runs_total', 'Recommendation training runs, by outcome', ['status'])
const duration = histogram(
  'reco_training_duration_seconds',
  'Wall time of a recommendation training run',
  [],
  [1, 5, 10, 30, 60, 120, 300, 600, 1800],
)
const trainedProfiles = gauge('reco_trained_profiles', 'Profiles given a module by the last training run')

/**
 * `reel reco train`: reads every profile's history and ratings and reco's copy of the catalog,
 * trains the collaborative model and the content neighbours in worker threads, and writes each
 * profile's module (its precomputed rows) to the DB, dropping the cached copies. One run at a time
 * across processes (a lease in the DB).
 */
export class Trainer {
  private running: Promise<TrainReport | undefined> | undefined

  constructor(private readonly d: TrainerDeps) {}

  get busy(): boolean {
    return this.running !== undefined
  }

  /** Runs now and answers its report; 409 training_running when a run is going on. */
  async runOrConflict(): Promise<TrainReport> {
    const report = await (this.running ? undefined : this.run())
    if (!report)
      throw conflict('training_running', 'Recommendations are being trained; try again when that run ends')
    return report
  }

  /** Runs now unless a run is going on here or in another process (then undefined). */
  run(): Promise<TrainReport | undefined> {
    this.running ??= this.leased().finally(() => {
      this.running = undefined
    })
    return this.running
  }

  private async leased(): Promise<TrainReport | undefined> {
    const now = this.d.now()
    if (!(await this.d.store.claimLease('training_lease', now, LEASE_MS))) {
      this.d.log.info('a training run is going on elsewhere; not starting another')
      return undefined
    }
    const runId = newId()
    await this.d.store.startRun(runId, now)
    // Plays and ratings counted from here on count towards the next run (REEL_RECO_TRAIN_AFTER_EVENTS).
    await this.d.store.setState(EVENTS_SINCE_RUN, 0)
    const timer = duration.startTimer()
    try {
      const report = await this.train(runId)
      await this.d.store.finishRun(runId, this.d.now(), 'succeeded', report)
      await this.d.announce(runId)
      runs.inc({ status: 'succeeded' })
      trainedProfiles.set(report.profiles)
      this.d.log.info(report, 'recommendations trained')
      return report
    } catch (e) {
      await this.d.store.finishRun(runId, this.d.now(), 'failed', { error: String(e) })
      runs.inc({ status: 'failed' })
      throw e
    } finally {
      timer()
      await this.d.store.setState('training_lease', 0)
    }
  }

  private async train(runId: string): Promise<TrainReport> {
    const started = performance.now()
    // A module written after this moment (a play or a rating handled meanwhile) is newer than the
    // facts this run reads: the run merges its top picks into it instead of replacing it.
    const factsFrom = this.d.now()
    await this.d.titles.fresh(true)
    const titles = [...this.d.titles.all()].sort((a, b) => (a.id < b.id ? -1 : 1))
    const itemOf = new Map(titles.map((t, i) => [t.id, i]))
    const profiles = await this.readFacts()
    const profileIds = [...profiles.keys()]

    // Implicit feedback: one weight per (profile, title) the profile watched or thumbed up.
    const users: number[] = []
    const items: number[] = []
    const weights: number[] = []
    for (const [u, id] of profileIds.entries()) {
      if (u % (YIELD_EVERY * 10) === 0) await yieldToEvents()
      const facts = profiles.get(id)
      if (!facts) continue
      const byTitle = new Map<string, Interaction>(facts.history.map((h) => [h.titleId, h]))
      for (const titleId of new Set([...byTitle.keys(), ...facts.ratings.keys()])) {
        const i = itemOf.get(titleId)
        const w = interactionWeight(byTitle.get(titleId), facts.ratings.get(titleId))
        if (i === undefined || w <= 0) continue
        users.push(u)
        items.push(i)
        weights.push(w)
      }
    }

    const contentStarted = performance.now()
    const contentRows =
      titles.length > 1 ? await this.d.content(titles.map(featuresOf), NEIGHBOURS) : new Int32Array()
    const contentMs = performance.now() - contentStarted
    const content = await neighbourLists(titles, contentRows, NEIGHBOURS)

    let model: TrainedModel | undefined
    if (users.length > 0 && titles.length > 0)
      model = await this.d.train(
        {
          nUsers: profileIds.length,
          nItems: titles.length,
          users: Int32Array.from(users),
          items: Int32Array.from(items),
          weights: Float32Array.from(weights),
        },
        { algorithm: this.d.algorithm, topN: TOP_N, topSimilar: NEIGHBOURS },
      )
    const cf = model
      ? await neighbourLists(titles, model.similar, model.topSimilar)
      : new Map<string, string[]>()

    await this.d.store.putSimilar(
      'content',
      [...content].map(([titleId, neighbours]) => ({ titleId, neighbours })),
    )
    await this.d.store.putSimilar(
      'cf',
      [...cf].map(([titleId, neighbours]) => ({ titleId, neighbours })),
    )

    const neighbours: Neighbours = {
      content: (id) => content.get(id) ?? [],
      cf: (id) => cf.get(id) ?? [],
      withPerson: (id) => this.d.titles.withPerson(id),
    }
    const now = this.d.now()
    let batch: { profileId: string; module: ProfileModule; json: string }[] = []
    let merged = 0
    const flush = async () => {
      const rows = batch.map((b) => ({ profileId: b.profileId, module: b.json }))
      const skipped = new Set(await this.d.store.putModules(rows, now, factsFrom))
      // Modules recomputed after this run read its facts: recomputed again, with this run's picks.
      for (const b of batch) if (skipped.has(b.profileId) && (await this.d.recompute(b.module))) merged++
      batch = []
      await yieldToEvents()
    }
    for (const [u, profileId] of profileIds.entries()) {
      const facts = profiles.get(profileId)
      if (!facts) continue
      const module: ProfileModule = {
        ...emptyModule(profileId, now),
        ...historyRows(facts, (id) => this.d.titles.get(id), neighbours),
        trainedAt: now,
      }
      if (model) {
        const picks: string[] = []
        const scores: number[] = []
        for (let r = 0; r < model.topN; r++) {
          const i = model.perUser[u * model.topN + r] ?? -1
          const title = i >= 0 ? titles[i] : undefined
          if (!title || facts.ratings.get(title.id) === 'down' || module.excluded.includes(title.id)) continue
          picks.push(title.id)
          scores.push(model.perUserScores[u * model.topN + r] ?? 0)
        }
        module.topPicks = picks
        module.topScores = scaleScores(scores)
      }
      batch.push({ profileId, module, json: JSON.stringify(module) })
      if (batch.length === WRITE_BATCH) await flush()
      else if (u % YIELD_EVERY === 0) await yieldToEvents()
    }
    if (batch.length > 0) await flush()
    if (merged > 0)
      this.d.log.info({ runId, merged }, 'top picks merged into modules recomputed during the run')
    return {
      runId,
      algorithm: this.d.algorithm,
      profiles: profileIds.length,
      titles: titles.length,
      interactions: users.length,
      ms: Math.round(performance.now() - started),
      modelMs: Math.round(model?.trainMs ?? 0),
      contentMs: Math.round(contentMs),
      rssBytes: process.memoryUsage.rss(),
    }
  }

  /** Every profile's history (most recent first) and ratings, read in pages. */
  private async readFacts(): Promise<Map<string, ProfileFacts & { history: Interaction[] }>> {
    const out = new Map<string, ProfileFacts & { history: Interaction[] }>()
    const factsOf = (profileId: string) => {
      let f = out.get(profileId)
      if (!f) {
        f = { profileId, history: [], ratings: new Map<string, Rating>() }
        out.set(profileId, f)
      }
      return f
    }
    let after: { profileId: string; titleId: string } | undefined
    for (;;) {
      const page = await this.d.store.historyPage(after, PAGE)
      for (const h of page)
        factsOf(h.profile_id).history.push({
          titleId: h.title_id,
          progress: h.progress,
          completed: h.completed === 1,
          lastAt: h.last_at,
        })
      const last = page.at(-1)
      if (!last || page.length < PAGE) break
      after = { profileId: last.profile_id, titleId: last.title_id }
      await yieldToEvents()
    }
    for (const r of await this.d.store.allRatings())
      (factsOf(r.profile_id).ratings as Map<string, Rating>).set(r.title_id, r.rating as Rating)
    let n = 0
    for (const f of out.values()) {
      f.history.sort((a, b) => b.lastAt - a.lastAt)
      if (++n % 1000 === 0) await yieldToEvents()
    }
    return out
  }
}

export function featuresOf(t: RecoTitle): ItemFeatures {
  return {
    genres: t.genres.map((g) => g.id),
    people: t.people.map((p) => p.id),
    keywords: t.tags,
    ...(t.language ? { language: t.language } : {}),
    ...(t.year !== null ? { year: t.year } : {}),
  }
}

async function neighbourLists(
  titles: readonly RecoTitle[],
  rows: Int32Array,
  k: number,
): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>()
  if (rows.length === 0) return out
  for (const [i, t] of titles.entries()) {
    if (i % 500 === 499) await yieldToEvents()
    const list: string[] = []
    for (let r = 0; r < k; r++) {
      const j = rows[i * k + r] ?? -1
      const other = j >= 0 ? titles[j] : undefined
      if (other) list.push(other.id)
    }
    if (list.length > 0) out.set(t.id, list)
  }
  return out
}

export interface ScheduleOptions {
  /** Train this long after the latest run started (0: never on a schedule). */
  intervalMs: number
  /** Train once this many plays and ratings arrived since the latest run started (0: never on events). */
  afterEvents: number
  /** This process's plays and ratings since the last call (it starts counting again from 0). */
  takeEvents: () => number
  /** Runs after each training this schedule started (the fallback page is saved again). */
  afterRun: () => Promise<void>
}

/**
 * When to train without being asked, checked at every tick (REEL_RECO_TRAIN_CHECK_S) by each
 * process that serves reco: once the latest run of any process started intervalMs ago (with no run
 * yet, intervalMs after this process started), or once afterEvents plays and ratings, added up
 * across processes in the DB, arrived since it started. The training lease keeps it to one run.
 */
export class TrainingSchedule {
  private readonly startedAt: number

  constructor(
    private readonly trainer: Trainer,
    private readonly store: RecoStore,
    private readonly now: () => number,
    private readonly options: ScheduleOptions,
  ) {
    this.startedAt = now()
  }

  /** Adds this process's new events to the shared count, then trains when due; answers why it trained. */
  async tick(): Promise<'schedule' | 'events' | undefined> {
    const { intervalMs, afterEvents } = this.options
    let events = 0
    if (afterEvents > 0) {
      const mine = this.options.takeEvents()
      events =
        mine > 0
          ? await this.store.addState(EVENTS_SINCE_RUN, mine)
          : await this.store.state(EVENTS_SINCE_RUN)
    }
    if (this.trainer.busy) return undefined
    let reason: 'schedule' | 'events' | undefined
    if (afterEvents > 0 && events >= afterEvents) reason = 'events'
    else if (
      intervalMs > 0 &&
      this.now() - ((await this.store.latestRunStart()) ?? this.startedAt) >= intervalMs
    )
      reason = 'schedule'
    if (!reason) return undefined
    // Another process holding the lease means that one trains.
    if (!(await this.trainer.run())) return undefined
    await this.options.afterRun()
    return reason
  }
}
