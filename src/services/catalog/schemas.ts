import { type TSchema, Type } from '@sinclair/typebox'
import { MATURITY_RATINGS } from '../accounts/rules.js'
import { CREDIT_ROLES, MEDIA_STATUSES, TITLE_TYPES } from './events.js'
import { MAX_EPISODES, MAX_SEASONS } from './rules.js'

const literals = <T extends string>(values: readonly T[], description?: string) =>
  Type.Union(
    values.map((v) => Type.Literal(v)),
    description ? { description } : {},
  )

export const TitleTypeSchema = literals(TITLE_TYPES)
export const RatingSchema = literals(
  MATURITY_RATINGS,
  'Maturity rating, youngest first: G, PG, PG-13, R, NC-17',
)
export const MediaStatusSchema = literals(MEDIA_STATUSES)
const Role = literals(CREDIT_ROLES)
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()])

// Lengths here only bound the work; the service states the real rules with their own error codes.
const Text = (maxLength: number) => Type.String({ maxLength })
const Id = Type.String({ minLength: 1, maxLength: 64 })
const Year = Type.Integer({ minimum: -100_000, maximum: 100_000 })
const Minutes = Type.Integer({ minimum: -100_000, maximum: 100_000 })

const ArtworkSchema = Type.Object(
  { poster: Type.Optional(Text(4096)), backdrop: Type.Optional(Text(4096)), logo: Type.Optional(Text(4096)) },
  { additionalProperties: false },
)

const CreditInputSchema = Type.Object(
  {
    personId: Type.Optional(Id),
    name: Type.Optional(Text(1000)),
    role: Role,
    character: Type.Optional(Nullable(Text(1000))),
  },
  { additionalProperties: false },
)

const WindowInputSchema = Type.Object(
  {
    region: Type.String({
      minLength: 1,
      maxLength: 10,
      description: 'Country code such as US, or * for every region',
    }),
    startsAt: Type.Optional(
      Nullable(Type.String({ maxLength: 40, description: 'ISO-8601; null: since always' })),
    ),
    endsAt: Type.Optional(Nullable(Type.String({ maxLength: 40, description: 'ISO-8601; null: for ever' }))),
  },
  { additionalProperties: false },
)

export const EpisodeInputSchema = Type.Object(
  {
    number: Type.Integer({ minimum: -1_000_000, maximum: 1_000_000 }),
    name: Type.Optional(Text(1000)),
    synopsis: Type.Optional(Text(20_000)),
    runtimeMin: Type.Optional(Nullable(Minutes)),
  },
  { additionalProperties: false },
)

export const EpisodeChangesSchema = Type.Partial(EpisodeInputSchema, { additionalProperties: false })

export const SeasonInputSchema = Type.Object(
  {
    number: Type.Integer({ minimum: -1_000_000, maximum: 1_000_000 }),
    name: Type.Optional(Text(1000)),
    synopsis: Type.Optional(Text(20_000)),
    year: Type.Optional(Nullable(Year)),
    episodes: Type.Optional(Type.Array(EpisodeInputSchema, { maxItems: MAX_EPISODES })),
  },
  { additionalProperties: false },
)

export const SeasonChangesSchema = Type.Partial(Type.Omit(SeasonInputSchema, ['episodes']), {
  additionalProperties: false,
})

const titleFields = {
  externalId: Type.Optional(Nullable(Text(1000))),
  title: Text(1000),
  synopsis: Type.Optional(Text(20_000)),
  year: Type.Optional(Nullable(Year)),
  runtimeMin: Type.Optional(Nullable(Minutes)),
  maturityRating: RatingSchema,
  originalLanguage: Type.Optional(Nullable(Text(100))),
  countries: Type.Optional(Type.Array(Text(100), { maxItems: 300 })),
  genres: Type.Optional(
    Type.Array(Text(100), { maxItems: 100, description: 'Genre ids from GET /api/v1/genres' }),
  ),
  tags: Type.Optional(Type.Array(Text(1000), { maxItems: 500 })),
  artwork: Type.Optional(ArtworkSchema),
  credits: Type.Optional(Type.Array(CreditInputSchema, { maxItems: 2000 })),
  availability: Type.Optional(Type.Array(WindowInputSchema, { maxItems: 3000 })),
  popularity: Type.Optional(Type.Number()),
}

export const TitleInputSchema = Type.Object(
  {
    type: TitleTypeSchema,
    ...titleFields,
    seasons: Type.Optional(Type.Array(SeasonInputSchema, { maxItems: MAX_SEASONS })),
  },
  { additionalProperties: false },
)

export const TitleChangesSchema = Type.Partial(Type.Object(titleFields), { additionalProperties: false })

const GenreRefSchema = Type.Object({ id: Type.String(), name: Type.String() })
const WindowSchema = Type.Object({
  region: Type.String(),
  startsAt: Nullable(Type.String({ format: 'date-time' })),
  endsAt: Nullable(Type.String({ format: 'date-time' })),
})
const ArtworkOut = Type.Object({
  poster: Type.Optional(Type.String()),
  backdrop: Type.Optional(Type.String()),
  logo: Type.Optional(Type.String()),
})

export const GenreSchema = GenreRefSchema

export const TitleSummarySchema = Type.Object({
  id: Type.String(),
  type: TitleTypeSchema,
  title: Type.String(),
  year: Nullable(Type.Integer()),
  genres: Type.Array(GenreRefSchema),
  maturityRating: RatingSchema,
  runtimeMin: Nullable(Type.Integer()),
  originalLanguage: Nullable(Type.String()),
  artwork: ArtworkOut,
  popularity: Type.Number(),
  mediaStatus: MediaStatusSchema,
})

const EpisodeSchema = Type.Object({
  id: Type.String(),
  seasonId: Type.String(),
  number: Type.Integer(),
  name: Type.String(),
  synopsis: Type.String(),
  runtimeMin: Nullable(Type.Integer()),
  mediaStatus: MediaStatusSchema,
  durationMs: Nullable(Type.Integer()),
})

export const SeasonSchema = Type.Object({
  id: Type.String(),
  number: Type.Integer(),
  name: Type.String(),
  synopsis: Type.String(),
  year: Nullable(Type.Integer()),
  episodes: Type.Array(EpisodeSchema),
})

export const EpisodeOutSchema = EpisodeSchema

export const TitleDetailSchema = Type.Object({
  id: Type.String(),
  externalId: Nullable(Type.String()),
  type: TitleTypeSchema,
  title: Type.String(),
  synopsis: Type.String(),
  year: Nullable(Type.Integer()),
  runtimeMin: Nullable(Type.Integer()),
  maturityRating: RatingSchema,
  originalLanguage: Nullable(Type.String()),
  countries: Type.Array(Type.String()),
  genres: Type.Array(GenreRefSchema),
  tags: Type.Array(Type.String()),
  artwork: ArtworkOut,
  credits: Type.Array(
    Type.Object({
      personId: Type.String(),
      name: Type.String(),
      role: Role,
      character: Nullable(Type.String()),
      order: Type.Integer(),
    }),
  ),
  availability: Type.Array(WindowSchema),
  popularity: Type.Number(),
  mediaStatus: MediaStatusSchema,
  durationMs: Nullable(Type.Integer()),
  seasonCount: Type.Integer(),
  episodeCount: Type.Integer(),
  version: Type.Integer(),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
  seasons: Type.Array(SeasonSchema),
})

export const PersonSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  credits: Type.Array(
    Type.Object({ role: Role, character: Nullable(Type.String()), title: TitleSummarySchema }),
  ),
})

export const ImportOutcomeSchema = Type.Object({
  index: Type.Integer({ description: 'Position of the record in the request' }),
  externalId: Nullable(Type.String()),
  status: literals(['created', 'updated', 'unchanged', 'rejected']),
  id: Type.Optional(Type.String()),
  code: Type.Optional(Type.String()),
  reason: Type.Optional(Type.String()),
})
