import type { Kysely } from 'kysely'
import type { Db } from '../../platform/db/db.js'
import { EVERY_REGION } from './events.js'

export interface TitleRow {
  id: string
  external_id: string | null
  type: string
  title: string
  sort_title: string
  synopsis: string
  year: number | null
  runtime_min: number | null
  maturity_rating: string
  original_language: string | null
  countries: string
  tags: string
  artwork: string
  popularity: number
  media_status: string
  duration_ms: number | null
  content_hash: string
  version: number
  created_at: number
  updated_at: number
}

export interface GenreRow {
  id: string
  name: string
}

interface TitleGenreRow {
  title_id: string
  genre_id: string
  position: number
}

export interface PersonRow {
  id: string
  name: string
  name_key: string
  created_at: number
}

export interface CreditRow {
  title_id: string
  person_id: string
  role: string
  position: number
  character: string | null
}

export interface AvailabilityRow {
  title_id: string
  position: number
  region: string
  starts_at: number | null
  ends_at: number | null
}

export interface SeasonRow {
  id: string
  title_id: string
  number: number
  name: string
  synopsis: string
  year: number | null
  created_at: number
  updated_at: number
}

export interface EpisodeRow {
  id: string
  title_id: string
  season_id: string
  number: number
  name: string
  synopsis: string
  runtime_min: number | null
  media_status: string
  duration_ms: number | null
  created_at: number
  updated_at: number
}

export interface OutboxRow {
  id: string
  type: string
  key: string
  data: string
  created_at: number
}

interface CatalogTables {
  catalog_titles: TitleRow
  catalog_genres: GenreRow
  catalog_title_genres: TitleGenreRow
  catalog_people: PersonRow
  catalog_credits: CreditRow
  catalog_availability: AvailabilityRow
  catalog_seasons: SeasonRow
  catalog_episodes: EpisodeRow
  catalog_outbox: OutboxRow
}

/** `newest` orders by id: UUIDv7 ids sort by creation time. */
export type ListSort = 'popularity' | 'title' | 'newest'

export interface ListQuery {
  genres?: string[]
  yearFrom?: number
  yearTo?: number
  languages?: string[]
  types?: string[]
  /** Only titles available in this country at `now`. */
  country: string
  now: number
  /** Only titles with one of these ratings; absent: any. */
  ratings?: string[]
  sort: ListSort
  /** Keyset: the sort value and id of the last title of the previous page. */
  after?: { value: number | string; id: string }
  limit: number
}

export type CreditOfTitle = CreditRow & { name: string }
export type GenreOfTitle = GenreRow & { title_id: string }

/** The catalog service's SQL, and nothing else. */
export class CatalogStore {
  private constructor(private readonly db: Kysely<CatalogTables>) {}

  static of(db: Db): CatalogStore {
    return new CatalogStore(db.tables<CatalogTables>())
  }

  /** Runs fn with a store whose statements share one transaction. */
  transaction<T>(fn: (store: CatalogStore) => Promise<T>): Promise<T> {
    return this.db.transaction().execute((tx) => fn(new CatalogStore(tx)))
  }

  genres(): Promise<GenreRow[]> {
    return this.db.selectFrom('catalog_genres').selectAll().orderBy('name').execute()
  }

  async existingGenres(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set()
    const rows = await this.db.selectFrom('catalog_genres').select('id').where('id', 'in', ids).execute()
    return new Set(rows.map((r) => r.id))
  }

  async existingPeople(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set()
    const rows = await this.db.selectFrom('catalog_people').select('id').where('id', 'in', ids).execute()
    return new Set(rows.map((r) => r.id))
  }

  peopleByKeys(keys: string[]): Promise<Pick<PersonRow, 'id' | 'name_key'>[]> {
    if (keys.length === 0) return Promise.resolve([])
    return this.db
      .selectFrom('catalog_people')
      .select(['id', 'name_key'])
      .where('name_key', 'in', keys)
      .orderBy('id')
      .execute()
  }

  async insertPeople(rows: PersonRow[]): Promise<void> {
    if (rows.length > 0) await this.db.insertInto('catalog_people').values(rows).execute()
  }

  person(id: string): Promise<PersonRow | undefined> {
    return this.db.selectFrom('catalog_people').selectAll().where('id', '=', id).executeTakeFirst()
  }

  creditsOfPerson(personId: string): Promise<CreditRow[]> {
    return this.db
      .selectFrom('catalog_credits')
      .selectAll()
      .where('person_id', '=', personId)
      .orderBy('title_id')
      .orderBy('position')
      .execute()
  }

  title(id: string): Promise<TitleRow | undefined> {
    return this.db.selectFrom('catalog_titles').selectAll().where('id', '=', id).executeTakeFirst()
  }

  titleByExternalId(externalId: string): Promise<TitleRow | undefined> {
    return this.db
      .selectFrom('catalog_titles')
      .selectAll()
      .where('external_id', '=', externalId)
      .executeTakeFirst()
  }

  /** How many titles have no external id starting with `prefix` (those a feed or an administrator made). */
  async countTitlesOutside(prefix: string): Promise<number> {
    const row = await this.db
      .selectFrom('catalog_titles')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where((eb) =>
        eb.or([
          eb('external_id', 'is', null),
          eb('external_id', 'not like', `${prefix.replace(/[%_\\]/g, '')}%`),
        ]),
      )
      .executeTakeFirst()
    return Number(row?.n ?? 0)
  }

  titles(ids: string[]): Promise<TitleRow[]> {
    if (ids.length === 0) return Promise.resolve([])
    return this.db.selectFrom('catalog_titles').selectAll().where('id', 'in', ids).execute()
  }

  async insertTitle(row: TitleRow): Promise<void> {
    await this.db.insertInto('catalog_titles').values(row).execute()
  }

  async updateTitle(id: string, changes: Partial<Omit<TitleRow, 'id'>>): Promise<void> {
    await this.db.updateTable('catalog_titles').set(changes).where('id', '=', id).execute()
  }

  /** The next version of a title, written with the change time; undefined when it does not exist. */
  async bumpVersion(id: string, now: number): Promise<number | undefined> {
    const row = await this.db
      .updateTable('catalog_titles')
      .set((eb) => ({ version: eb('version', '+', 1), updated_at: now }))
      .where('id', '=', id)
      .returning('version')
      .executeTakeFirst()
    return row?.version
  }

  async deleteTitle(id: string): Promise<boolean> {
    const result = await this.db.deleteFrom('catalog_titles').where('id', '=', id).executeTakeFirst()
    return Number(result.numDeletedRows) > 0
  }

  async setGenres(titleId: string, genreIds: string[]): Promise<void> {
    await this.db.deleteFrom('catalog_title_genres').where('title_id', '=', titleId).execute()
    if (genreIds.length > 0)
      await this.db
        .insertInto('catalog_title_genres')
        .values(genreIds.map((genre_id, position) => ({ title_id: titleId, genre_id, position })))
        .execute()
  }

  async setCredits(titleId: string, credits: CreditRow[]): Promise<void> {
    await this.db.deleteFrom('catalog_credits').where('title_id', '=', titleId).execute()
    for (let i = 0; i < credits.length; i += 100)
      await this.db
        .insertInto('catalog_credits')
        .values(credits.slice(i, i + 100))
        .execute()
  }

  async setAvailability(titleId: string, windows: AvailabilityRow[]): Promise<void> {
    await this.db.deleteFrom('catalog_availability').where('title_id', '=', titleId).execute()
    for (let i = 0; i < windows.length; i += 100)
      await this.db
        .insertInto('catalog_availability')
        .values(windows.slice(i, i + 100))
        .execute()
  }

  genresOf(titleIds: string[]): Promise<GenreOfTitle[]> {
    if (titleIds.length === 0) return Promise.resolve([])
    return this.db
      .selectFrom('catalog_title_genres as tg')
      .innerJoin('catalog_genres as g', 'g.id', 'tg.genre_id')
      .select(['tg.title_id', 'g.id', 'g.name'])
      .where('tg.title_id', 'in', titleIds)
      .orderBy('tg.title_id')
      .orderBy('tg.position')
      .execute()
  }

  creditsOf(titleIds: string[]): Promise<CreditOfTitle[]> {
    if (titleIds.length === 0) return Promise.resolve([])
    return this.db
      .selectFrom('catalog_credits as c')
      .innerJoin('catalog_people as p', 'p.id', 'c.person_id')
      .select(['c.title_id', 'c.person_id', 'c.role', 'c.position', 'c.character', 'p.name'])
      .where('c.title_id', 'in', titleIds)
      .orderBy('c.title_id')
      .orderBy('c.position')
      .execute()
  }

  availabilityOf(titleIds: string[]): Promise<AvailabilityRow[]> {
    if (titleIds.length === 0) return Promise.resolve([])
    return this.db
      .selectFrom('catalog_availability')
      .selectAll()
      .where('title_id', 'in', titleIds)
      .orderBy('title_id')
      .orderBy('position')
      .execute()
  }

  seasons(titleId: string): Promise<SeasonRow[]> {
    return this.db
      .selectFrom('catalog_seasons')
      .selectAll()
      .where('title_id', '=', titleId)
      .orderBy('number')
      .execute()
  }

  episodes(titleId: string): Promise<EpisodeRow[]> {
    return this.db
      .selectFrom('catalog_episodes')
      .selectAll()
      .where('title_id', '=', titleId)
      .orderBy('season_id')
      .orderBy('number')
      .execute()
  }

  async seasonCounts(titleIds: string[]): Promise<Map<string, number>> {
    if (titleIds.length === 0) return new Map()
    const rows = await this.db
      .selectFrom('catalog_seasons')
      .select(['title_id', (eb) => eb.fn.countAll<number>().as('n')])
      .where('title_id', 'in', titleIds)
      .groupBy('title_id')
      .execute()
    return new Map(rows.map((r) => [r.title_id, Number(r.n)]))
  }

  episodeStatuses(titleIds: string[]): Promise<Pick<EpisodeRow, 'title_id' | 'media_status'>[]> {
    if (titleIds.length === 0) return Promise.resolve([])
    return this.db
      .selectFrom('catalog_episodes')
      .select(['title_id', 'media_status'])
      .where('title_id', 'in', titleIds)
      .execute()
  }

  season(id: string): Promise<SeasonRow | undefined> {
    return this.db.selectFrom('catalog_seasons').selectAll().where('id', '=', id).executeTakeFirst()
  }

  seasonByNumber(titleId: string, number: number): Promise<SeasonRow | undefined> {
    return this.db
      .selectFrom('catalog_seasons')
      .selectAll()
      .where('title_id', '=', titleId)
      .where('number', '=', number)
      .executeTakeFirst()
  }

  async insertSeason(row: SeasonRow): Promise<void> {
    await this.db.insertInto('catalog_seasons').values(row).execute()
  }

  async updateSeason(id: string, changes: Partial<Omit<SeasonRow, 'id' | 'title_id'>>): Promise<void> {
    await this.db.updateTable('catalog_seasons').set(changes).where('id', '=', id).execute()
  }

  async deleteSeason(id: string): Promise<void> {
    await this.db.deleteFrom('catalog_seasons').where('id', '=', id).execute()
  }

  episode(id: string): Promise<EpisodeRow | undefined> {
    return this.db.selectFrom('catalog_episodes').selectAll().where('id', '=', id).executeTakeFirst()
  }

  episodeByNumber(seasonId: string, number: number): Promise<EpisodeRow | undefined> {
    return this.db
      .selectFrom('catalog_episodes')
      .selectAll()
      .where('season_id', '=', seasonId)
      .where('number', '=', number)
      .executeTakeFirst()
  }

  async insertEpisode(row: EpisodeRow): Promise<void> {
    await this.db.insertInto('catalog_episodes').values(row).execute()
  }

  async updateEpisode(id: string, changes: Partial<Omit<EpisodeRow, 'id' | 'title_id' | 'season_id'>>) {
    await this.db.updateTable('catalog_episodes').set(changes).where('id', '=', id).execute()
  }

  async deleteEpisode(id: string): Promise<void> {
    await this.db.deleteFrom('catalog_episodes').where('id', '=', id).execute()
  }

  /**
   * Every title whatever its availability, newest first, whose folded title (sort_title) contains
   * `text`; one extra row tells a next page exists.
   */
  adminTitles(q: { text?: string; beforeId?: string; limit: number }): Promise<TitleRow[]> {
    let query = this.db.selectFrom('catalog_titles').selectAll()
    // sort_title holds letters, digits and spaces only: a folded query has no LIKE wildcards.
    if (q.text) query = query.where('sort_title', 'like', `%${q.text}%`)
    if (q.beforeId) query = query.where('id', '<', q.beforeId)
    return query
      .orderBy('id', 'desc')
      .limit(q.limit + 1)
      .execute()
  }

  /** One page of titles visible under the query, in its sort order (one extra row tells a next page exists). */
  listTitles(q: ListQuery): Promise<TitleRow[]> {
    let query = this.db
      .selectFrom('catalog_titles as t')
      .selectAll('t')
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom('catalog_availability as a')
            .select('a.title_id')
            .whereRef('a.title_id', '=', 't.id')
            .where('a.region', 'in', [q.country, EVERY_REGION])
            .where((w) => w.or([w('a.starts_at', 'is', null), w('a.starts_at', '<=', q.now)]))
            .where((w) => w.or([w('a.ends_at', 'is', null), w('a.ends_at', '>', q.now)])),
        ),
      )
    const genres = q.genres
    if (genres && genres.length > 0)
      query = query.where((eb) =>
        eb.exists(
          eb
            .selectFrom('catalog_title_genres as tg')
            .select('tg.title_id')
            .whereRef('tg.title_id', '=', 't.id')
            .where('tg.genre_id', 'in', genres),
        ),
      )
    if (q.yearFrom !== undefined) query = query.where('t.year', '>=', q.yearFrom)
    if (q.yearTo !== undefined) query = query.where('t.year', '<=', q.yearTo)
    if (q.languages && q.languages.length > 0) query = query.where('t.original_language', 'in', q.languages)
    if (q.types && q.types.length > 0) query = query.where('t.type', 'in', q.types)
    if (q.ratings) query = query.where('t.maturity_rating', 'in', q.ratings)
    const after = q.after
    if (q.sort === 'popularity') {
      if (after)
        query = query.where((eb) =>
          eb.or([
            eb('t.popularity', '<', Number(after.value)),
            eb.and([eb('t.popularity', '=', Number(after.value)), eb('t.id', '>', after.id)]),
          ]),
        )
      query = query.orderBy('t.popularity', 'desc').orderBy('t.id')
    } else if (q.sort === 'newest') {
      if (after) query = query.where('t.id', '<', after.id)
      query = query.orderBy('t.id', 'desc')
    } else {
      if (after)
        query = query.where((eb) =>
          eb.or([
            eb('t.sort_title', '>', String(after.value)),
            eb.and([eb('t.sort_title', '=', String(after.value)), eb('t.id', '>', after.id)]),
          ]),
        )
      query = query.orderBy('t.sort_title').orderBy('t.id')
    }
    return query.limit(q.limit + 1).execute()
  }

  async addOutbox(row: OutboxRow): Promise<void> {
    await this.db
      .insertInto('catalog_outbox')
      .values(row)
      .onConflict((oc) => oc.column('id').doNothing())
      .execute()
  }

  pendingOutbox(createdBefore: number, limit: number): Promise<OutboxRow[]> {
    return this.db
      .selectFrom('catalog_outbox')
      .selectAll()
      .where('created_at', '<', createdBefore)
      .orderBy('created_at')
      .orderBy('id')
      .limit(limit)
      .execute()
  }

  async deleteOutbox(ids: string[]): Promise<void> {
    if (ids.length > 0) await this.db.deleteFrom('catalog_outbox').where('id', 'in', ids).execute()
  }
}
