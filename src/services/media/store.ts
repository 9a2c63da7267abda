import type { Kysely } from 'kysely'
import type { Db } from '../../platform/db/db.js'

/** Where a title's job is: stages run in this order; `failed` can follow any of them. */
export type JobStage = 'uploading' | 'probing' | 'transcoding' | 'packaging' | 'available' | 'failed'

export interface JobRow {
  title_id: string
  stage: JobStage
  /** As uploaded (the catalog keeps the title's own record). */
  title: string
  year: number | null
  duration_ms: number | null
  source_key: string
  source_name: string | null
  source_bytes: number | null
  /** JSON SourceInfo, once probed. */
  source: string | null
  /** JSON plan (renditions, chunks), once planned. */
  plan: string | null
  error_code: string | null
  error_message: string | null
  created_by: string | null
  created_at: number
  updated_at: number
  finished_at: number | null
}

export type TaskKind = 'probe' | 'encode' | 'audio' | 'package'
export type TaskState = 'queued' | 'running' | 'done' | 'failed'

export interface TaskRow {
  title_id: string
  key: string
  kind: TaskKind
  rendition: string | null
  chunk: number | null
  /** Share of the title's work, for the percent done. */
  weight: number
  state: TaskState
  attempts: number
  progress_permille: number
  error: string | null
  worker: string | null
  started_at: number | null
  finished_at: number | null
  updated_at: number
}

export interface RenditionRow {
  title_id: string
  name: string
  kind: 'video' | 'audio'
  width: number | null
  height: number | null
  frame_rate: string | null
  codecs: string
  bandwidth: number
  average_bandwidth: number
  playlist_key: string
  init_key: string
  parts: number
  duration_us: number
}

export interface PartRow {
  title_id: string
  rendition: string
  part_no: number
  blob_key: string
  start_us: number
  duration_us: number
  bytes: number
}

interface MediaTables {
  media_jobs: JobRow
  media_tasks: TaskRow
  media_renditions: RenditionRow
  media_parts: PartRow
}

/** The media service's SQL. */
export class MediaStore {
  private readonly db: Kysely<MediaTables>

  constructor(db: Db) {
    this.db = db.tables<MediaTables>()
  }

  async insertJob(row: JobRow): Promise<void> {
    await this.db
      .insertInto('media_jobs')
      .values(row)
      .onConflict((oc) => oc.column('title_id').doNothing())
      .execute()
  }

  job(titleId: string): Promise<JobRow | undefined> {
    return this.db.selectFrom('media_jobs').selectAll().where('title_id', '=', titleId).executeTakeFirst()
  }

  /** Moves a job on; with `from`, only when it is still in one of those stages. True when it moved. */
  async updateJob(
    titleId: string,
    changes: Partial<Omit<JobRow, 'title_id'>>,
    from?: readonly JobStage[],
  ): Promise<boolean> {
    let query = this.db.updateTable('media_jobs').set(changes).where('title_id', '=', titleId)
    if (from) query = query.where('stage', 'in', from)
    const result = await query.executeTakeFirst()
    return Number(result.numUpdatedRows) > 0
  }

  jobsIn(stages: readonly JobStage[], limit = 1000): Promise<JobRow[]> {
    return this.db
      .selectFrom('media_jobs')
      .selectAll()
      .where('stage', 'in', stages)
      .orderBy('created_at')
      .limit(limit)
      .execute()
  }

  async insertTasks(rows: TaskRow[]): Promise<void> {
    if (rows.length === 0) return
    for (let i = 0; i < rows.length; i += 200) {
      await this.db
        .insertInto('media_tasks')
        .values(rows.slice(i, i + 200))
        .onConflict((oc) => oc.columns(['title_id', 'key']).doNothing())
        .execute()
    }
  }

  tasks(titleId: string): Promise<TaskRow[]> {
    return this.db
      .selectFrom('media_tasks')
      .selectAll()
      .where('title_id', '=', titleId)
      .orderBy('kind')
      .orderBy('chunk')
      .orderBy('rendition')
      .execute()
  }

  task(titleId: string, key: string): Promise<TaskRow | undefined> {
    return this.db
      .selectFrom('media_tasks')
      .selectAll()
      .where('title_id', '=', titleId)
      .where('key', '=', key)
      .executeTakeFirst()
  }

  async updateTask(
    titleId: string,
    key: string,
    changes: Partial<Omit<TaskRow, 'title_id' | 'key'>>,
  ): Promise<void> {
    await this.db
      .updateTable('media_tasks')
      .set(changes)
      .where('title_id', '=', titleId)
      .where('key', '=', key)
      .execute()
  }

  /** Progress of a running task; never moves a finished one back. */
  async taskProgress(titleId: string, key: string, permille: number, now: number): Promise<void> {
    await this.db
      .updateTable('media_tasks')
      .set({ progress_permille: permille, updated_at: now })
      .where('title_id', '=', titleId)
      .where('key', '=', key)
      .where('state', '=', 'running')
      .execute()
  }

  async unfinishedTasks(titleId: string, kinds: readonly TaskKind[]): Promise<number> {
    const row = await this.db
      .selectFrom('media_tasks')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('title_id', '=', titleId)
      .where('kind', 'in', kinds)
      .where('state', '!=', 'done')
      .executeTakeFirst()
    return Number(row?.n ?? 0)
  }

  /** Replaces a title's renditions and parts index in one transaction. */
  async replaceIndex(titleId: string, renditions: RenditionRow[], parts: PartRow[]): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('media_parts').where('title_id', '=', titleId).execute()
      await trx.deleteFrom('media_renditions').where('title_id', '=', titleId).execute()
      if (renditions.length > 0) await trx.insertInto('media_renditions').values(renditions).execute()
      for (let i = 0; i < parts.length; i += 200) {
        await trx
          .insertInto('media_parts')
          .values(parts.slice(i, i + 200))
          .execute()
      }
    })
  }

  async deleteIndex(titleId: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('media_parts').where('title_id', '=', titleId).execute()
      await trx.deleteFrom('media_renditions').where('title_id', '=', titleId).execute()
    })
  }

  renditions(titleId: string): Promise<RenditionRow[]> {
    return this.db
      .selectFrom('media_renditions')
      .selectAll()
      .where('title_id', '=', titleId)
      .orderBy('kind', 'desc')
      .orderBy('bandwidth', 'desc')
      .execute()
  }

  parts(titleId: string, rendition: string): Promise<PartRow[]> {
    return this.db
      .selectFrom('media_parts')
      .selectAll()
      .where('title_id', '=', titleId)
      .where('rendition', '=', rendition)
      .orderBy('part_no')
      .execute()
  }
}
