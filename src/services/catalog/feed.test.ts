import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../../../test/engines.js'
import {
  countryCodeOf,
  type FeedItem,
  languageTagOf,
  parseFeed,
  readFeed,
  recordOfRow,
  UnreadableFeed,
} from './feed.js'
import { genreIdOf } from './genres.js'

const IMDB_HEADER =
  'color,director_name,duration,actor_2_name,genres,actor_1_name,movie_title,num_voted_users,actor_3_name,plot_keywords,movie_imdb_link,language,country,content_rating,title_year'

async function collect(file: string, regions = ['*']): Promise<FeedItem[]> {
  const items: FeedItem[] = []
  for await (const item of readFeed(file, { regions })) items.push(item)
  return items
}

describe('catalog feeds', () => {
  it('maps an IMDb-5000 row: trailing spaces, ratings, languages, countries, people, id', () => {
    const record = recordOfRow(
      {
        director_name: 'James Cameron',
        duration: '178',
        actor_1_name: 'CCH Pounder',
        actor_2_name: 'Joel David Moore',
        actor_3_name: '',
        genres: 'Action|Adventure|Sci-Fi',
        movie_title: 'Avatar\u00a0',
        num_voted_users: '886204',
        plot_keywords: 'avatar|future|marine',
        movie_imdb_link: 'http://www.imdb.com/title/tt0499549/?ref_=fn_tt_tt_1',
        language: 'English',
        country: 'USA',
        content_rating: 'PG-13',
        title_year: '2009',
      },
      { regions: ['US', 'CA'] },
    )
    expect(record).toEqual({
      externalId: 'imdb:tt0499549',
      type: 'movie',
      title: 'Avatar',
      synopsis: '',
      year: 2009,
      runtimeMin: 178,
      maturityRating: 'PG-13',
      originalLanguage: 'en',
      countries: ['US'],
      genres: ['action', 'adventure', 'sci-fi'],
      tags: ['avatar', 'future', 'marine'],
      credits: [
        { name: 'James Cameron', role: 'director' },
        { name: 'CCH Pounder', role: 'cast' },
        { name: 'Joel David Moore', role: 'cast' },
      ],
      availability: [{ region: 'US' }, { region: 'CA' }],
      popularity: 886204,
    })
  })

  it('reads an IMDb row without year and director as a series, and unrated as NC-17', () => {
    const record = recordOfRow(
      {
        movie_title: 'Miami Vice             ',
        content_rating: '',
        movie_imdb_link: '/title/tt0086759/',
        title_year: '',
      },
      { regions: ['*'] },
    )
    expect(record).toMatchObject({ type: 'series', title: 'Miami Vice', maturityRating: 'NC-17', year: null })
    expect(recordOfRow({ content_rating: 'TV-MA' }, { regions: [] }).maturityRating).toBe('R')
    expect(recordOfRow({ content_rating: 'Approved' }, { regions: [] }).maturityRating).toBe('G')
  })

  it('passes values it cannot read on, for the catalog to reject with a reason', () => {
    const record = recordOfRow({ title: 'X', year: 'nineteen', content_rating: 'Banned' }, { regions: ['*'] })
    expect(record).toMatchObject({ year: 'nineteen', maturityRating: 'Banned', externalId: undefined })
  })

  it('knows country and language names, codes and old names', () => {
    expect(
      ['USA', 'UK', 'West Germany', 'France', 'fr', 'Narnia', 'Official site'].map(countryCodeOf),
    ).toEqual(['US', 'GB', 'DE', 'FR', 'FR', undefined, undefined])
    expect(['English', 'Mandarin', 'pt-BR', 'None', 'Klingonese'].map(languageTagOf)).toEqual([
      'en',
      'zh',
      'pt-BR',
      undefined,
      undefined,
    ])
    expect(['Sci-Fi', 'science fiction', 'Film-Noir', 'Telenovela'].map(genreIdOf)).toEqual([
      'sci-fi',
      'sci-fi',
      'film-noir',
      undefined,
    ])
  })

  it('reads a CSV file with a BOM, blank lines and a broken row, with line numbers', async () => {
    const tmp = tempDir()
    try {
      const file = path.join(tmp.dir, 'feed.csv')
      const rows = [
        `\ufeff${IMDB_HEADER}`,
        'Color,A Director,100,,Drama,An Actor,First ,10,,,http://www.imdb.com/title/tt0000001/,English,USA,R,2001',
        '',
        'Color,B Director,90,,Comedy,"Unclosed quote,Second,5,,,http://www.imdb.com/title/tt0000002/,English,USA,PG,2002',
      ]
      fs.writeFileSync(file, rows.join('\n'))
      const items = await collect(file)
      expect(items[0]).toMatchObject({ line: 2, record: { title: 'First', externalId: 'imdb:tt0000001' } })
      expect(items.filter((i) => 'rejected' in i).length + items.filter((i) => 'record' in i).length).toBe(
        items.length,
      )
    } finally {
      tmp.cleanup()
    }
  })

  it('reads JSON arrays, { titles } objects and NDJSON, rejecting what is not an object', async () => {
    const tmp = tempDir()
    try {
      const json = path.join(tmp.dir, 'feed.json')
      fs.writeFileSync(json, JSON.stringify({ titles: [{ externalId: 'a', title: 'A' }, 42] }))
      const items = await collect(json, ['DE'])
      expect(items[0]).toEqual({
        line: 1,
        record: { externalId: 'a', title: 'A', availability: [{ region: 'DE' }] },
      })
      expect(items[1]).toMatchObject({ line: 2, rejected: { code: 'malformed_record' } })
      const ndjson = path.join(tmp.dir, 'feed.ndjson')
      fs.writeFileSync(ndjson, '{"externalId":"b","availability":[]}\n\n{broken\n')
      const lines = await collect(ndjson)
      expect(lines[0]).toEqual({ line: 1, record: { externalId: 'b', availability: [] } })
      expect(lines[1]).toMatchObject({ line: 3, rejected: { code: 'malformed_record' } })
      const text = path.join(tmp.dir, 'feed.txt')
      fs.writeFileSync(text, 'x')
      await expect(collect(text)).rejects.toThrow(/\.csv, \.json/)
      fs.writeFileSync(json, '{oops')
      await expect(collect(json)).rejects.toThrow(/not valid JSON/)
    } finally {
      tmp.cleanup()
    }
  })

  it('reads a feed sent whole (the admin page) by the same rules as a file, bad rows by line', async () => {
    const tmp = tempDir()
    try {
      const rows = [
        `\ufeff${IMDB_HEADER}`,
        'Color,A Director,100,,Drama,An Actor,First ,10,,,http://www.imdb.com/title/tt0000001/,English,USA,R,2001',
        '',
        'Color,B Director,90,,Comedy,"Unclosed quote,Second,5,,,http://www.imdb.com/title/tt0000002/,English,USA,PG,2002',
        'Color,C Director,95,,Comedy,Third Actor,Third,7,,,http://www.imdb.com/title/tt0000003/,French,France,PG-13,2003',
      ].join('\n')
      const file = path.join(tmp.dir, 'feed.csv')
      fs.writeFileSync(file, rows)
      const fromText = parseFeed(rows, 'csv', { regions: ['*'] })
      expect(fromText).toEqual(await collect(file))
      expect(fromText[0]).toMatchObject({ line: 2, record: { title: 'First', maturityRating: 'R' } })

      const json = JSON.stringify([{ externalId: 'a', title: 'A' }, 'nope'])
      fs.writeFileSync(path.join(tmp.dir, 'feed.json'), json)
      expect(parseFeed(json, 'json', { regions: ['GB'] })).toEqual(
        await collect(path.join(tmp.dir, 'feed.json'), ['GB']),
      )
      expect(() => parseFeed('{oops', 'json', { regions: ['*'] })).toThrow(UnreadableFeed)
      expect(() => parseFeed('{"movies": []}', 'json', { regions: ['*'] })).toThrow(/array of titles/)
    } finally {
      tmp.cleanup()
    }
  })
})
