import type { Generated, Kysely } from 'kysely'
import type { Db } from '../../platform/db/db.js'

interface TitlesTable {
  id: string
  version: number
  removed: number
  doc: string
  seq: number
}

interface HistoryTable {
  profile_id: string
  title_id: string
  progress: number
  completed: number
  last_at: number
}

interface RatingsTable {
  profile_id: string
  title_id: string
  rating: string
  updated_at: number
}

interface ModulesTable {
  profile_id: string
  module: string
  updated_at: number
  version: Generated<number>
}

interface SimilarTable {
  title_id: string
  kind: string
  neighbours: string
}

interface RunsTable {
  id: string
  started_at: number
  finished_at: number | null
  status: string
  report: string
}

interface CampaignsTable {
  id: string
  doc: string
  budget: number
  impressions: number
  starts_at: number
  ends_at: number
  updated_at: number
}

interface StateTable {
  name: string
  value: number
}

interface RecoTables {
  reco_titles: TitlesTable
  reco_history: HistoryTable
  reco_ratings: RatingsTable
  reco_modules: ModulesTable
  reco_similar: SimilarTable
  reco_runs: RunsTable
  reco_campaigns: CampaignsTable
  reco_state: StateTable
}

export type HistoryRow = HistoryTable
export type RatingRow = RatingsTable
export type CampaignRow = CampaignsTable
export type TitleRow = TitlesTable
export type RunRow = RunsTable

/** A (profile, title) pair of the history as one map key. */
export const historyKey = (profileId: string, titleId: string): string => `${profileId}\n${titleId}`

/** Rows written per statement in bulk writes (SQLite allows 32 766 bound values). */
const BATCH = 500

export class RecoStore {
  private readonly db: Kysely<RecoTables>

  constructor(readonly port: Db) {
    this.db = port.tables<RecoTables>()
  }

  /** Keeps the newer version of a title (an older event arriving late changes nothing). */
  async putTitle(id: string, version: number, removed: boolean, doc: string, seq: number): Promise<void> {
    await this.db
      .insertInto('reco_titles')
      .values({ id, version, removed: removed ? 1 : 0, doc, seq })
      .onConflict((oc) =>
        oc
          .column('id')
          .doUpdateSet({ version, removed: removed ? 1 : 0, doc, seq })
          .where('reco_titles.version', '<', version),
      )
      .execute()
  }

  titlesSince(seq: number): Promise<TitleRow[]> {
    return this.db.selectFrom('reco_titles').selectAll().where('seq', '>=', seq).orderBy('seq').execute()
  }

  /** Raises a profile's facts about a title: progress to the maximum seen, completed once set stays set. */
  async recordPlay(row: HistoryRow): Promise<void> {
    await this.recordPlays([row])
  }

  /**
   * recordPlay for many rows, a statement per BATCH. Rows of the same profile and title are merged
   * first (one statement may change a row once on PostgreSQL).
   */
  async recordPlays(rows: readonly HistoryRow[]): Promise<void> {
    const merged = new Map<string, HistoryRow>()
    for (const row of rows) {
      const key = historyKey(row.profile_id, row.title_id)
      const seen = merged.get(key)
      merged.set(
        key,
        seen
          ? {
              ...seen,
              progress: Math.max(seen.progress, row.progress),
              completed: Math.max(seen.completed, row.completed),
              last_at: Math.max(seen.last_at, row.last_at),
            }
          : row,
      )
    }
    const all = [...merged.values()]
    // The larger of two values: SQLite's scalar max(), PostgreSQL's greatest().
    const larger = this.port.kind === 'postgres' ? 'greatest' : 'max'
    for (let i = 0; i < all.length; i += BATCH)
      await this.db
        .insertInto('reco_history')
        .values(all.slice(i, i + BATCH))
        .onConflict((oc) =>
          oc.columns(['profile_id', 'title_id']).doUpdateSet((eb) => ({
            progress: eb.fn(larger, [eb.ref('reco_history.progress'), eb.ref('excluded.progress')]),
            completed: eb.fn(larger, [eb.ref('reco_history.completed'), eb.ref('excluded.completed')]),
            last_at: eb.fn(larger, [eb.ref('reco_history.last_at'), eb.ref('excluded.last_at')]),
          })),
        )
        .execute()
  }

  /** The history rows of these (profile, title) pairs, for those that have one. */
  async historyRows(pairs: readonly { profileId: string; titleId: string }[]): Promise<HistoryRow[]> {
    const wanted = new Set(pairs.map((p) => historyKey(p.profileId, p.titleId)))
    const profiles = [...new Set(pairs.map((p) => p.profileId))]
    const titles = [...new Set(pairs.map((p) => p.titleId))]
    const out: HistoryRow[] = []
    // By profile and title lists (the rows of other pairs of the two lists are dropped here).
    for (let i = 0; i < profiles.length; i += BATCH)
      for (let j = 0; j < titles.length; j += BATCH)
        for (const row of await this.db
          .selectFrom('reco_history')
          .selectAll()
          .where('profile_id', 'in', profiles.slice(i, i + BATCH))
          .where('title_id', 'in', titles.slice(j, j + BATCH))
          .execute())
          if (wanted.has(historyKey(row.profile_id, row.title_id))) out.push(row)
    return out
  }

  historyOf(profileId: string, limit: number): Promise<HistoryRow[]> {
    return this.db
      .selectFrom('reco_history')
      .selectAll()
      .where('profile_id', '=', profileId)
      .orderBy('last_at', 'desc')
      .limit(limit)
      .execute()
  }

  /** Every profile's history, in pages by key (for training). */
  historyPage(
    after: { profileId: string; titleId: string } | undefined,
    limit: number,
  ): Promise<HistoryRow[]> {
    let q = this.db.selectFrom('reco_history').selectAll()
    if (after)
      q = q.where((eb) =>
        eb.or([
          eb('profile_id', '>', after.profileId),
          eb.and([eb('profile_id', '=', after.profileId), eb('title_id', '>', after.titleId)]),
        ]),
      )
    return q.orderBy('profile_id').orderBy('title_id').limit(limit).execute()
  }

  async insertHistory(rows: readonly HistoryRow[]): Promise<void> {
    for (let i = 0; i < rows.length; i += BATCH)
      await this.db
        .insertInto('reco_history')
        .values(rows.slice(i, i + BATCH))
        .onConflict((oc) => oc.columns(['profile_id', 'title_id']).doNothing())
        .execute()
  }

  async putRating(profileId: string, titleId: string, rating: string, now: number): Promise<void> {
    await this.db
      .insertInto('reco_ratings')
      .values({ profile_id: profileId, title_id: titleId, rating, updated_at: now })
      .onConflict((oc) => oc.columns(['profile_id', 'title_id']).doUpdateSet({ rating, updated_at: now }))
      .execute()
  }

  async deleteRating(profileId: string, titleId: string): Promise<boolean> {
    const r = await this.db
      .deleteFrom('reco_ratings')
      .where('profile_id', '=', profileId)
      .where('title_id', '=', titleId)
      .executeTakeFirst()
    return Number(r.numDeletedRows) > 0
  }

  ratingsOf(profileId: string): Promise<RatingRow[]> {
    return this.db
      .selectFrom('reco_ratings')
      .selectAll()
      .where('profile_id', '=', profileId)
      .orderBy('updated_at', 'desc')
      .execute()
  }

  allRatings(): Promise<RatingRow[]> {
    return this.db.selectFrom('reco_ratings').selectAll().execute()
  }

  async module(profileId: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('reco_modules')
      .select('module')
      .where('profile_id', '=', profileId)
      .executeTakeFirst()
    return row?.module
  }

  /** A profile's module with its version (for saveModuleIf). */
  moduleRow(profileId: string): Promise<{ module: string; version: number } | undefined> {
    return this.db
      .selectFrom('reco_modules')
      .select(['module', 'version'])
      .where('profile_id', '=', profileId)
      .executeTakeFirst()
  }

  /**
   * Training's write: each module replaces one last written before `factsFrom` (when training read
   * the facts it was computed from). Answers the profiles it left alone: their modules are newer.
   */
  async putModules(
    rows: readonly { profileId: string; module: string }[],
    now: number,
    factsFrom: number,
  ): Promise<string[]> {
    const skipped: string[] = []
    for (let i = 0; i < rows.length; i += BATCH) {
      const slice = rows.slice(i, i + BATCH)
      const values = slice.map((r) => ({ profile_id: r.profileId, module: r.module, updated_at: now }))
      const written = await this.db
        .insertInto('reco_modules')
        .values(values)
        .onConflict((oc) =>
          oc
            .column('profile_id')
            .doUpdateSet((eb) => ({
              module: eb.ref('excluded.module'),
              updated_at: eb.ref('excluded.updated_at'),
              version: eb('reco_modules.version', '+', 1),
            }))
            .where('reco_modules.updated_at', '<', factsFrom),
        )
        .returning('profile_id')
        .execute()
      const done = new Set(written.map((r) => r.profile_id))
      for (const r of slice) if (!done.has(r.profileId)) skipped.push(r.profileId)
    }
    return skipped
  }

  /**
   * Writes a module when the stored one still has `version` (undefined: when there is none yet);
   * false when another writer came first (read it again and recompute).
   */
  async saveModuleIf(
    profileId: string,
    module: string,
    now: number,
    version: number | undefined,
  ): Promise<boolean> {
    if (version === undefined) {
      const r = await this.db
        .insertInto('reco_modules')
        .values({ profile_id: profileId, module, updated_at: now })
        .onConflict((oc) => oc.column('profile_id').doNothing())
        .executeTakeFirst()
      return Number(r.numInsertedOrUpdatedRows ?? 0) === 1
    }
    const r = await this.db
      .updateTable('reco_modules')
      .set((eb) => ({ module, updated_at: now, version: eb('version', '+', 1) }))
      .where('profile_id', '=', profileId)
      .where('version', '=', version)
      .executeTakeFirst()
    return Number(r.numUpdatedRows) === 1
  }

  /** True while reco knows something of the profile (deleting it removes its history and ratings). */
  async hasFacts(profileId: string): Promise<boolean> {
    const [history, rating] = await Promise.all([
      this.db
        .selectFrom('reco_history')
        .select('title_id')
        .where('profile_id', '=', profileId)
        .limit(1)
        .executeTakeFirst(),
      this.db
        .selectFrom('reco_ratings')
        .select('title_id')
        .where('profile_id', '=', profileId)
        .limit(1)
        .executeTakeFirst(),
    ])
    return history !== undefined || rating !== undefined
  }

  async deleteModule(profileId: string): Promise<void> {
    await this.db.deleteFrom('reco_modules').where('profile_id', '=', profileId).execute()
  }

  async putSimilar(kind: string, rows: readonly { titleId: string; neighbours: string[] }[]): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('reco_similar').where('kind', '=', kind).execute()
      for (let i = 0; i < rows.length; i += BATCH)
        await trx
          .insertInto('reco_similar')
          .values(
            rows
              .slice(i, i + BATCH)
              .map((r) => ({ title_id: r.titleId, kind, neighbours: JSON.stringify(r.neighbours) })),
          )
          .execute()
    })
  }

  async similar(kind: string, titleIds: readonly string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>()
    if (titleIds.length === 0) return out
    const rows = await this.db
      .selectFrom('reco_similar')
      .select(['title_id', 'neighbours'])
      .where('kind', '=', kind)
      .where('title_id', 'in', [...titleIds])
      .execute()
    for (const r of rows) out.set(r.title_id, JSON.parse(r.neighbours) as string[])
    return out
  }

  async deleteProfile(profileId: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('reco_history').where('profile_id', '=', profileId).execute()
      await trx.deleteFrom('reco_ratings').where('profile_id', '=', profileId).execute()
      await trx.deleteFrom('reco_modules').where('profile_id', '=', profileId).execute()
    })
  }

  async startRun(id: string, now: number): Promise<void> {
    await this.db
      .insertInto('reco_runs')
      .values({ id, started_at: now, finished_at: null, status: 'running', report: '{}' })
      .execute()
  }

  async finishRun(id: string, now: number, status: string, report: unknown): Promise<void> {
    await this.db
      .updateTable('reco_runs')
      .set({ finished_at: now, status, report: JSON.stringify(report) })
      .where('id', '=', id)
      .execute()
  }

  lastRun(): Promise<RunRow | undefined> {
    return this.db
      .selectFrom('reco_runs')
      .selectAll()
      .where('status', '=', 'succeeded')
      .orderBy('started_at', 'desc')
      .limit(1)
      .executeTakeFirst()
  }

  /** When the latest run (of any outcome) started; undefined before the first. */
  async latestRunStart(): Promise<number | undefined> {
    const row = await this.db
      .selectFrom('reco_runs')
      .select('started_at')
      .orderBy('started_at', 'desc')
      .limit(1)
      .executeTakeFirst()
    return row?.started_at
  }

  async state(name: string): Promise<number> {
    const row = await this.db
      .selectFrom('reco_state')
      .select('value')
      .where('name', '=', name)
      .executeTakeFirst()
    return row?.value ?? 0
  }

  async setState(name: string, value: number): Promise<void> {
    await this.db
      .insertInto('reco_state')
      .values({ name, value })
      .onConflict((oc) => oc.column('name').doUpdateSet({ value }))
      .execute()
  }

  /**
   * Takes a lease (its value is the time it was taken) when it is free or older than leaseMs; true
   * when this caller got it. One conditional update: two processes cannot both take it.
   */
  async claimLease(name: string, now: number, leaseMs: number): Promise<boolean> {
    await this.db
      .insertInto('reco_state')
      .values({ name, value: 0 })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute()
    const r = await this.db
      .updateTable('reco_state')
      .set({ value: now })
      .where('name', '=', name)
      .where('value', '<=', now - leaseMs)
      .executeTakeFirst()
    return Number(r.numUpdatedRows) === 1
  }

  /** Adds to a counter atomically; returns the new value. */
  async addState(name: string, by: number): Promise<number> {
    const row = await this.db
      .insertInto('reco_state')
      .values({ name, value: by })
      .onConflict((oc) => oc.column('name').doUpdateSet((eb) => ({ value: eb('reco_state.value', '+', by) })))
      .returning('value')
      .executeTakeFirstOrThrow()
    return Number(row.value)
  }

  // Campaigns

  async putCampaign(row: CampaignRow): Promise<void> {
    await this.db
      .insertInto('reco_campaigns')
      .values(row)
      .onConflict((oc) =>
        oc.column('id').doUpdateSet({
          doc: row.doc,
          budget: row.budget,
          starts_at: row.starts_at,
          ends_at: row.ends_at,
          updated_at: row.updated_at,
        }),
      )
      .execute()
  }

  campaign(id: string): Promise<CampaignRow | undefined> {
    return this.db.selectFrom('reco_campaigns').selectAll().where('id', '=', id).executeTakeFirst()
  }

  campaigns(): Promise<CampaignRow[]> {
    return this.db.selectFrom('reco_campaigns').selectAll().orderBy('starts_at').execute()
  }

  /** Campaigns whose flight is open at `now` and whose budget is not spent. */
  liveCampaigns(now: number): Promise<CampaignRow[]> {
    return this.db
      .selectFrom('reco_campaigns')
      .selectAll()
      .where('starts_at', '<=', now)
      .where('ends_at', '>', now)
      .whereRef('impressions', '<', 'budget')
      .execute()
  }

  async deleteCampaign(id: string): Promise<boolean> {
    const r = await this.db.deleteFrom('reco_campaigns').where('id', '=', id).executeTakeFirst()
    return Number(r.numDeletedRows) > 0
  }

  /**
   * Reserves up to `want` impressions of a campaign, never past `cap` (its pacing allowance) nor its
   * budget: a compare-and-set on the count, retried when another process moved it meanwhile.
   * Returns how many were reserved (0 when none are left).
   */
  async reserveImpressions(campaignId: string, cap: number, want: number): Promise<number> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const row = await this.db
        .selectFrom('reco_campaigns')
        .select(['impressions', 'budget'])
        .where('id', '=', campaignId)
        .executeTakeFirst()
      if (!row) return 0
      const grant = Math.min(want, cap - row.impressions, row.budget - row.impressions)
      if (grant <= 0) return 0
      const r = await this.db
        .updateTable('reco_campaigns')
        .set({ impressions: row.impressions + grant })
        .where('id', '=', campaignId)
        .where('impressions', '=', row.impressions)
        .executeTakeFirst()
      if (Number(r.numUpdatedRows) === 1) return grant
    }
    return 0
  }

  async returnImpressions(campaignId: string, n: number): Promise<void> {
    await this.db
      .updateTable('reco_campaigns')
      .set((eb) => ({ impressions: eb('impressions', '-', n) }))
      .where('id', '=', campaignId)
      .execute()
  }
}
