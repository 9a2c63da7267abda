/**
 * The contract between reco's models (pure numeric code in this folder, run in a worker thread)
 * and the reco service (which turns their output into each profile's home rows).
 *
 * Users and items are dense indices (0..nUsers-1, 0..nItems-1); the service maps profile and
 * title ids to them and back.
 */

/** Implicit feedback: one entry per (user, item) pair; weight > 0 (a play, a finish, a thumbs up). */
export interface TrainingData {
  nUsers: number
  nItems: number
  users: Int32Array
  items: Int32Array
  weights: Float32Array
}

export type Algorithm = 'ease' | 'itemknn' | 'popularity'

export interface TrainOptions {
  algorithm: Algorithm
  /** Recommendations kept per user (seen items removed). */
  topN: number
  /** Neighbours kept per item (item-to-item collaborative filtering). */
  topSimilar: number
  /** EASE's L2 regularisation. */
  lambda?: number
  /** item-kNN's neighbourhood size. */
  neighbours?: number
}

/**
 * What a training run hands back: row-major top lists, -1 where fewer exist.
 * perUser[u * topN + r] is user u's r-th recommendation; similar[i * topSimilar + r] is item i's
 * r-th neighbour. Scores are comparable within a list only. Items without evidence (score exactly
 * 0) are left out, so a user with no interactions gets an all -1 list.
 */
export interface TrainedModel {
  algorithm: Algorithm
  nUsers: number
  nItems: number
  topN: number
  topSimilar: number
  perUser: Int32Array
  perUserScores: Float32Array
  similar: Int32Array
  similarScores: Float32Array
  trainMs: number
}

/** Content features of one item for content-based similarity (genres, people, keywords, language, era). */
export interface ItemFeatures {
  genres: string[]
  people: string[]
  keywords: string[]
  language?: string
  year?: number
}

/** Top-k neighbours of every item, row-major like TrainedModel.similar: ids[i * k + r], -1 past the end. */
export interface ItemNeighbours {
  k: number
  ids: Int32Array
  scores: Float32Array
}
