import type { MaturityRating } from '../accounts/rules.js'
import type { ClipPattern } from '../media/democlip.js'
import type { TitleInput } from './rules.js'

/**
 * The demo catalog `reel seed` installs: made-up movies and series (titles, people and stories are
 * invented), with posters drawn as SVG and short generated clips as their media.
 */

export const DEMO_EXTERNAL_ID_PREFIX = 'reel-demo:'

export interface DemoEpisode {
  number: number
  name: string
  synopsis: string
}

export interface DemoSeason {
  number: number
  name: string
  year: number
  synopsis: string
  episodes: DemoEpisode[]
}

export interface DemoTitle {
  slug: string
  type: 'movie' | 'series'
  title: string
  year: number
  synopsis: string
  genres: string[]
  maturityRating: MaturityRating
  originalLanguage: string
  countries: string[]
  tags: string[]
  directors: string[]
  cast: { name: string; character: string }[]
  writers?: string[]
  /** Countries it is shown in (`*`: everywhere), and until when (ISO date) when limited. */
  regions?: string[]
  endsAt?: string
  popularity: number
  clip: { pattern: ClipPattern; colors: [string, string]; tone: number }
  seasons?: DemoSeason[]
}

// Ordered so that the first few (what tests seed) hold a movie and a series.
export const DEMO_TITLES: readonly DemoTitle[] = [
  {
    slug: 'lighthouse-keeper',
    type: 'movie',
    title: 'The Lighthouse Keeper',
    year: 2019,
    synopsis:
      'On a storm-beaten island, a retired keeper finds a logbook that records ships which never sailed. Each entry brings the next night closer to his own.',
    genres: ['drama', 'mystery'],
    maturityRating: 'PG-13',
    originalLanguage: 'en',
    countries: ['GB', 'IE'],
    tags: ['island', 'storm', 'logbook'],
    directors: ['Maren Holt'],
    cast: [
      { name: 'Idris Calloway', character: 'Tobias Wren' },
      { name: 'June Okafor', character: 'Nell Wren' },
      { name: 'Arvid Lind', character: 'The Harbourmaster' },
    ],
    writers: ['Maren Holt'],
    popularity: 980,
    clip: { pattern: 'gradients', colors: ['#0b2545', '#8da9c4'], tone: 220 },
  },
  {
    slug: 'harbor-lights',
    type: 'series',
    title: 'Harbor Lights',
    year: 2022,
    synopsis:
      'A small fishing town, a closed cannery and the family that wants to open it again. Every season, one more secret washes ashore.',
    genres: ['drama'],
    maturityRating: 'PG-13',
    originalLanguage: 'en',
    countries: ['CA'],
    tags: ['small town', 'family', 'sea'],
    directors: ['Ana Petrescu'],
    cast: [
      { name: 'June Okafor', character: 'Rosa Delaney' },
      { name: 'Callum Reyes', character: 'Finn Delaney' },
    ],
    writers: ['Theo Marchetti'],
    popularity: 940,
    clip: { pattern: 'gradients', colors: ['#1b4332', '#ffb703'], tone: 262 },
    seasons: [
      {
        number: 1,
        name: 'Season 1',
        year: 2022,
        synopsis: 'The Delaneys come home.',
        episodes: [
          {
            number: 1,
            name: 'Low Tide',
            synopsis: 'Rosa returns to sell the cannery and finds it full of nets.',
          },
          { number: 2, name: 'The Auction', synopsis: 'Half the town bids against the Delaneys.' },
        ],
      },
      {
        number: 2,
        name: 'Season 2',
        year: 2023,
        synopsis: 'The cannery opens; the sea has other plans.',
        episodes: [
          { number: 1, name: 'First Catch', synopsis: 'Opening day, and the boats come back empty.' },
          {
            number: 2,
            name: 'Storm Warning',
            synopsis: 'Finn takes the boat out against everyone’s advice.',
          },
        ],
      },
    ],
  },
  {
    slug: 'pip-paper-moon',
    type: 'movie',
    title: 'Pip and the Paper Moon',
    year: 2021,
    synopsis:
      'A paper mouse folds herself a moon to find her way home across the rooftops of a sleeping city.',
    genres: ['animation', 'family', 'kids'],
    maturityRating: 'G',
    originalLanguage: 'en',
    countries: ['US'],
    tags: ['origami', 'mouse', 'night'],
    directors: ['Lotte Brandt'],
    cast: [
      { name: 'Mia Sørensen', character: 'Pip (voice)' },
      { name: 'Oskar Feld', character: 'Moth (voice)' },
    ],
    popularity: 900,
    clip: { pattern: 'gradients', colors: ['#3a0ca3', '#f72585'], tone: 523 },
  },
  {
    slug: 'iron-orchard',
    type: 'movie',
    title: 'Iron Orchard',
    year: 2022,
    synopsis:
      'Two brothers run the last apple farm in a county bought up by a mining company, until one of them takes the company’s money.',
    genres: ['crime', 'thriller'],
    maturityRating: 'R',
    originalLanguage: 'en',
    countries: ['US'],
    tags: ['brothers', 'farm', 'mining'],
    directors: ['Dana Whitcombe'],
    cast: [
      { name: 'Callum Reyes', character: 'Eli Barlow' },
      { name: 'Sam Adeyemi', character: 'Jonah Barlow' },
    ],
    writers: ['Dana Whitcombe', 'Theo Marchetti'],
    popularity: 870,
    clip: { pattern: 'bars', colors: ['#6a040f', '#d00000'], tone: 110 },
  },
  {
    slug: 'tidepool-tales',
    type: 'series',
    title: 'Tidepool Tales',
    year: 2020,
    synopsis:
      'A hermit crab, a starfish and a very shy octopus solve the small mysteries of their rock pool.',
    genres: ['animation', 'kids', 'comedy'],
    maturityRating: 'G',
    originalLanguage: 'en',
    countries: ['AU'],
    tags: ['ocean', 'friendship'],
    directors: ['Kenji Arai'],
    cast: [
      { name: 'Oskar Feld', character: 'Shelby (voice)' },
      { name: 'Mia Sørensen', character: 'Astra (voice)' },
    ],
    popularity: 860,
    clip: { pattern: 'gradients', colors: ['#00b4d8', '#caf0f8'], tone: 440 },
    seasons: [
      {
        number: 1,
        name: 'Season 1',
        year: 2020,
        synopsis: 'Life between two tides.',
        episodes: [
          { number: 1, name: 'The Missing Shell', synopsis: 'Shelby wakes up without a home.' },
          { number: 2, name: 'Ink Everywhere', synopsis: 'Someone has been drawing on the rocks.' },
          { number: 3, name: 'King Tide', synopsis: 'The biggest wave of the year is coming.' },
        ],
      },
    ],
  },
  {
    slug: 'voisins-du-dessus',
    type: 'movie',
    title: 'Les Voisins du dessus',
    year: 2018,
    synopsis:
      'Un pianiste insomniaque et la danseuse de claquettes qui vit au-dessus de lui se déclarent la guerre, une nuit après l’autre.',
    genres: ['comedy', 'romance'],
    maturityRating: 'PG',
    originalLanguage: 'fr',
    countries: ['FR', 'BE'],
    tags: ['neighbours', 'paris', 'music'],
    directors: ['Camille Roussel'],
    cast: [
      { name: 'Léa Fontaine', character: 'Margaux' },
      { name: 'Hugo Marchal', character: 'Bastien' },
    ],
    regions: ['FR', 'BE', 'CH', 'CA', 'US'],
    popularity: 820,
    clip: { pattern: 'testsrc', colors: ['#c0392b', '#f5cba7'], tone: 294 },
  },
  {
    slug: 'velocity-drift',
    type: 'movie',
    title: 'Velocity Drift',
    year: 2023,
    synopsis:
      'A courier with a stolen prototype car has one night to cross the city before the people who built it find her.',
    genres: ['action', 'thriller'],
    maturityRating: 'PG-13',
    originalLanguage: 'en',
    countries: ['US'],
    tags: ['cars', 'chase', 'heist'],
    directors: ['Rico Valdés'],
    cast: [
      { name: 'Sam Adeyemi', character: 'Kit Navarro' },
      { name: 'Arvid Lind', character: 'Mr. Sato' },
    ],
    popularity: 800,
    clip: { pattern: 'testsrc', colors: ['#f77f00', '#003049'], tone: 330 },
  },
  {
    slug: 'jardin-de-invierno',
    type: 'movie',
    title: 'El jardín de invierno',
    year: 2017,
    synopsis:
      'Una botánica viuda y un joven jardinero reconstruyen un invernadero abandonado en las afueras de Valparaíso.',
    genres: ['drama', 'romance'],
    maturityRating: 'PG-13',
    originalLanguage: 'es',
    countries: ['CL', 'ES'],
    tags: ['garden', 'greenhouse', 'grief'],
    directors: ['Inés Carrasco'],
    cast: [
      { name: 'Carmen Ibáñez', character: 'Elena' },
      { name: 'Mateo Ruiz', character: 'Tomás' },
    ],
    popularity: 760,
    clip: { pattern: 'gradients', colors: ['#2d6a4f', '#d8f3dc'], tone: 349 },
  },
  {
    slug: 'signal-from-kepler',
    type: 'movie',
    title: 'Signal from Kepler',
    year: 2024,
    synopsis:
      'A radio astronomer decodes a message that turns out to be a recording of her own observatory, forty years from now.',
    genres: ['sci-fi', 'mystery'],
    maturityRating: 'PG-13',
    originalLanguage: 'en',
    countries: ['US', 'CL'],
    tags: ['space', 'radio', 'time'],
    directors: ['Maren Holt'],
    cast: [
      { name: 'Carmen Ibáñez', character: 'Dr. Vera Sol' },
      { name: 'Idris Calloway', character: 'Ames' },
    ],
    endsAt: '2035-12-31T23:59:59Z',
    popularity: 740,
    clip: { pattern: 'gradients', colors: ['#03045e', '#7209b7'], tone: 196 },
  },
  {
    slug: 'mountain-echoes',
    type: 'movie',
    title: 'Mountain Echoes',
    year: 2020,
    synopsis:
      'A year above the tree line with the shepherds, ibex and weather of a high Alpine valley, recorded without a word of narration.',
    genres: ['documentary'],
    maturityRating: 'G',
    originalLanguage: 'de',
    countries: ['CH', 'AT'],
    tags: ['mountains', 'nature', 'seasons'],
    directors: ['Jonas Berger'],
    cast: [],
    popularity: 700,
    clip: { pattern: 'gradients', colors: ['#457b9d', '#f1faee'], tone: 247 },
  },
  {
    slug: 'ramen-night-shift',
    type: 'movie',
    title: 'Ramen Night Shift',
    year: 2016,
    synopsis:
      '深夜のラーメン屋に集まる常連客たち。店主が店を閉めると決めた夜、誰もが最後の一杯を頼みに来る。',
    genres: ['comedy', 'drama'],
    maturityRating: 'PG',
    originalLanguage: 'ja',
    countries: ['JP'],
    tags: ['food', 'tokyo', 'night'],
    directors: ['Kenji Arai'],
    cast: [
      { name: 'Haruto Mori', character: 'Master' },
      { name: 'Yui Tanaka', character: 'Aiko' },
    ],
    popularity: 680,
    clip: { pattern: 'bars', colors: ['#9d0208', '#ffba08'], tone: 392 },
  },
  {
    slug: 'nightfall-boulevard',
    type: 'movie',
    title: 'Nightfall Boulevard',
    year: 1998,
    synopsis:
      'A disgraced detective takes one last case from a woman who claims to have hired him before, in a city that forgets everything by morning.',
    genres: ['film-noir', 'crime', 'mystery'],
    maturityRating: 'R',
    originalLanguage: 'en',
    countries: ['US'],
    tags: ['detective', 'noir', 'amnesia'],
    directors: ['Dana Whitcombe'],
    cast: [
      { name: 'Arvid Lind', character: 'Frank Moreau' },
      { name: 'Léa Fontaine', character: 'Odile' },
    ],
    popularity: 650,
    clip: { pattern: 'gradients', colors: ['#111111', '#6c757d'], tone: 147 },
  },
  {
    slug: 'brass-and-thunder',
    type: 'movie',
    title: 'Brass & Thunder',
    year: 2021,
    synopsis:
      'A marching band from a town of 900 people goes to the national championship, on a borrowed bus.',
    genres: ['documentary', 'music'],
    maturityRating: 'PG',
    originalLanguage: 'en',
    countries: ['US'],
    tags: ['band', 'competition', 'road trip'],
    directors: ['Rico Valdés'],
    cast: [],
    popularity: 620,
    clip: { pattern: 'testsrc', colors: ['#e9c46a', '#264653'], tone: 466 },
  },
]

const escapeXml = (s: string) =>
  s.replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] ?? c,
  )

/** Words into lines of at most `width` characters. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else line = line ? `${line} ${word}` : word
  }
  if (line) lines.push(line)
  return lines
}

/** A poster (2:3) or backdrop (16:9) with the title on the title's two colors, as a data: URL. */
export function demoArtwork(title: DemoTitle, shape: 'poster' | 'backdrop'): string {
  const [w, h] = shape === 'poster' ? [300, 450] : [640, 360]
  const lines = wrap(title.title, shape === 'poster' ? 12 : 22).slice(0, 4)
  const size = shape === 'poster' ? 34 : 40
  const top = h / 2 - ((lines.length - 1) * size * 1.15) / 2
  const text = lines
    .map((l, i) => `<tspan x="${w / 2}" y="${Math.round(top + i * size * 1.15)}">${escapeXml(l)}</tspan>`)
    .join('')
  const [c0, c1] = title.clip.colors
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">` +
    `<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="${c0}"/><stop offset="1" stop-color="${c1}"/></linearGradient></defs>` +
    `<rect width="${w}" height="${h}" fill="url(#g)"/>` +
    `<text font-family="sans-serif" font-weight="bold" font-size="${size}" fill="#fff" stroke="#000" stroke-opacity=".35" text-anchor="middle">${text}</text>` +
    `<text x="${w / 2}" y="${h - 24}" font-family="sans-serif" font-size="${shape === 'poster' ? 16 : 24}" fill="#fff" text-anchor="middle">${title.year} · ${title.maturityRating}</text>` +
    '</svg>'
  return `data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}`
}

/** The catalog record of a demo title (the shape `importTitles` takes). */
export function demoRecord(title: DemoTitle): TitleInput {
  return {
    externalId: `${DEMO_EXTERNAL_ID_PREFIX}${title.slug}`,
    type: title.type,
    title: title.title,
    synopsis: title.synopsis,
    year: title.year,
    maturityRating: title.maturityRating,
    originalLanguage: title.originalLanguage,
    countries: title.countries,
    genres: title.genres,
    tags: [...title.tags, 'reel demo'],
    artwork: { poster: demoArtwork(title, 'poster'), backdrop: demoArtwork(title, 'backdrop') },
    credits: [
      ...title.directors.map((name) => ({ name, role: 'director' as const })),
      ...title.cast.map((c) => ({ name: c.name, role: 'cast' as const, character: c.character })),
      ...(title.writers ?? []).map((name) => ({ name, role: 'writer' as const })),
    ],
    availability: (title.regions ?? ['*']).map((region) => ({
      region,
      startsAt: null,
      endsAt: title.endsAt ?? null,
    })),
    popularity: title.popularity,
    seasons: title.seasons?.map((s) => ({
      number: s.number,
      name: s.name,
      synopsis: s.synopsis,
      year: s.year,
      episodes: s.episodes.map((e) => ({ number: e.number, name: e.name, synopsis: e.synopsis })),
    })),
  }
}
