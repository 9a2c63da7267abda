import type { ReelMigration } from '../../platform/db/db.js'
import { GENRES } from './genres.js'

export const catalogMigrations: Record<string, ReelMigration> = {
  catalog_0001_titles_people_genres: {
    async up(db) {
      await db.schema
        .createTable('catalog_genres')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .execute()
      await db
        .insertInto('catalog_genres' as never)
        .values(GENRES.map((g) => ({ id: g.id, name: g.name })) as never)
        .onConflict((oc) => oc.column('id' as never).doNothing())
        .execute()

      await db.schema
        .createTable('catalog_titles')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('external_id', 'text', (c) => c.unique())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('title', 'text', (c) => c.notNull())
        .addColumn('sort_title', 'text', (c) => c.notNull())
        .addColumn('synopsis', 'text', (c) => c.notNull())
        .addColumn('year', 'integer')
        .addColumn('runtime_min', 'integer')
        .addColumn('maturity_rating', 'text', (c) => c.notNull())
        .addColumn('original_language', 'text')
        .addColumn('countries', 'text', (c) => c.notNull())
        .addColumn('tags', 'text', (c) => c.notNull())
        .addColumn('artwork', 'text', (c) => c.notNull())
        .addColumn('popularity', 'double precision', (c) => c.notNull())
        .addColumn('media_status', 'text', (c) => c.notNull())
        .addColumn('duration_ms', 'bigint')
        .addColumn('content_hash', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute()
      for (const [name, columns] of [
        ['catalog_titles_popularity', ['popularity', 'id']],
        ['catalog_titles_sort_title', ['sort_title', 'id']],
        ['catalog_titles_year', ['year', 'id']],
      ] as const) {
        await db.schema
          .createIndex(name)
          .ifNotExists()
          .on('catalog_titles')
          .columns([...columns])
          .execute()
      }

      await db.schema
        .createTable('catalog_title_genres')
        .ifNotExists()
        .addColumn('title_id', 'text', (c) => c.notNull().references('catalog_titles.id').onDelete('cascade'))
        .addColumn('genre_id', 'text', (c) => c.notNull().references('catalog_genres.id'))
        .addColumn('position', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('catalog_title_genres_pk', ['title_id', 'genre_id'])
        .execute()
      await db.schema
        .createIndex('catalog_title_genres_genre')
        .ifNotExists()
        .on('catalog_title_genres')
        .columns(['genre_id', 'title_id'])
        .execute()

      await db.schema
        .createTable('catalog_people')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('name_key', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute()
      await db.schema
        .createIndex('catalog_people_name_key')
        .ifNotExists()
        .on('catalog_people')
        .column('name_key')
        .execute()

      await db.schema
        .createTable('catalog_credits')
        .ifNotExists()
        .addColumn('title_id', 'text', (c) => c.notNull().references('catalog_titles.id').onDelete('cascade'))
        .addColumn('person_id', 'text', (c) => c.notNull().references('catalog_people.id'))
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('position', 'integer', (c) => c.notNull())
        .addColumn('character', 'text')
        .addPrimaryKeyConstraint('catalog_credits_pk', ['title_id', 'position'])
        .execute()
      await db.schema
        .createIndex('catalog_credits_person')
        .ifNotExists()
        .on('catalog_credits')
        .columns(['person_id', 'title_id'])
        .execute()

      await db.schema
        .createTable('catalog_availability')
        .ifNotExists()
        .addColumn('title_id', 'text', (c) => c.notNull().references('catalog_titles.id').onDelete('cascade'))
        .addColumn('position', 'integer', (c) => c.notNull())
        .addColumn('region', 'text', (c) => c.notNull())
        .addColumn('starts_at', 'bigint')
        .addColumn('ends_at', 'bigint')
        .addPrimaryKeyConstraint('catalog_availability_pk', ['title_id', 'position'])
        .execute()
      await db.schema
        .createIndex('catalog_availability_region')
        .ifNotExists()
        .on('catalog_availability')
        .columns(['region', 'title_id'])
        .execute()

      await db.schema
        .createTable('catalog_seasons')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('title_id', 'text', (c) => c.notNull().references('catalog_titles.id').onDelete('cascade'))
        .addColumn('number', 'integer', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('synopsis', 'text', (c) => c.notNull())
        .addColumn('year', 'integer')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('catalog_seasons_number', ['title_id', 'number'])
        .execute()

      await db.schema
        .createTable('catalog_episodes')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('title_id', 'text', (c) => c.notNull().references('catalog_titles.id').onDelete('cascade'))
        .addColumn('season_id', 'text', (c) =>
          c.notNull().references('catalog_seasons.id').onDelete('cascade'),
        )
        .addColumn('number', 'integer', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('synopsis', 'text', (c) => c.notNull())
        .addColumn('runtime_min', 'integer')
        .addColumn('media_status', 'text', (c) => c.notNull())
        .addColumn('duration_ms', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('catalog_episodes_number', ['season_id', 'number'])
        .execute()
      await db.schema
        .createIndex('catalog_episodes_title')
        .ifNotExists()
        .on('catalog_episodes')
        .column('title_id')
        .execute()

      // Events written in the same transaction as the change they announce, published right after
      // the commit and again by a relay job if the process died in between (the bus dedups by id).
      await db.schema
        .createTable('catalog_outbox')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('data', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute()
    },
  },
}
