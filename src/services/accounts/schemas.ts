import { Type } from '@sinclair/typebox'
import { MATURITY_RATINGS } from './rules.js'

export const AccountSchema = Type.Object({
  id: Type.String(),
  email: Type.String(),
  role: Type.Union([Type.Literal('member'), Type.Literal('admin')]),
  country: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
})

export const TokensSchema = Type.Object({
  accessToken: Type.String(),
  refreshToken: Type.String(),
  tokenType: Type.Literal('Bearer'),
  expiresIn: Type.Integer({ description: 'Seconds the access token is valid' }),
  sessionId: Type.String(),
})

export const Maturity = Type.Union(
  MATURITY_RATINGS.map((r) => Type.Literal(r)),
  { description: 'Highest maturity rating the profile may watch' },
)

export const ProfileSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kids: Type.Boolean(),
  maturityLimit: Maturity,
  language: Type.String(),
  avatar: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
})

export const SessionSchema = Type.Object({
  id: Type.String(),
  device: Type.String(),
  address: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  lastUsedAt: Type.String({ format: 'date-time' }),
  current: Type.Boolean(),
})

// Lengths here only bound the work; the service states the real rules with their own error codes.
export const Email = Type.String({ minLength: 1, maxLength: 1000 })
export const Password = Type.String({ minLength: 1, maxLength: 4096 })
const ProfileName = Type.String({ maxLength: 20_000 })
const Avatar = Type.String({ pattern: '^[a-z0-9-]{1,40}$' })
const Language = Type.String({ minLength: 1, maxLength: 100 })

export const NewProfile = Type.Object(
  {
    name: ProfileName,
    kids: Type.Optional(Type.Boolean()),
    maturityLimit: Type.Optional(Maturity),
    language: Type.Optional(Language),
    avatar: Type.Optional(Avatar),
  },
  { additionalProperties: false },
)

export const ProfileChanges = Type.Object(
  {
    name: Type.Optional(ProfileName),
    kids: Type.Optional(Type.Boolean()),
    maturityLimit: Type.Optional(Maturity),
    language: Type.Optional(Language),
    avatar: Type.Optional(Avatar),
  },
  { additionalProperties: false, minProperties: 1 },
)
