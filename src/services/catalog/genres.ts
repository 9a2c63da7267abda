/**
 * The genres a title can have: a closed list (ids are stable slugs, names are for people), kept as
 * data and seeded by the migration. Feeds name genres the IMDb way ("Sci-Fi", "Film-Noir").
 */
export const GENRES: readonly { id: string; name: string }[] = [
  { id: 'action', name: 'Action' },
  { id: 'adventure', name: 'Adventure' },
  { id: 'animation', name: 'Animation' },
  { id: 'biography', name: 'Biography' },
  { id: 'comedy', name: 'Comedy' },
  { id: 'crime', name: 'Crime' },
  { id: 'documentary', name: 'Documentary' },
  { id: 'drama', name: 'Drama' },
  { id: 'family', name: 'Family' },
  { id: 'fantasy', name: 'Fantasy' },
  { id: 'film-noir', name: 'Film-Noir' },
  { id: 'game-show', name: 'Game-Show' },
  { id: 'history', name: 'History' },
  { id: 'horror', name: 'Horror' },
  { id: 'kids', name: 'Kids' },
  { id: 'music', name: 'Music' },
  { id: 'musical', name: 'Musical' },
  { id: 'mystery', name: 'Mystery' },
  { id: 'news', name: 'News' },
  { id: 'reality-tv', name: 'Reality-TV' },
  { id: 'romance', name: 'Romance' },
  { id: 'sci-fi', name: 'Sci-Fi' },
  { id: 'short', name: 'Short' },
  { id: 'sport', name: 'Sport' },
  { id: 'talk-show', name: 'Talk-Show' },
  { id: 'thriller', name: 'Thriller' },
  { id: 'war', name: 'War' },
  { id: 'western', name: 'Western' },
]

/** A genre named by a feed ("Sci-Fi", "sci fi", "science fiction") as its id, or undefined. */
export function genreIdOf(name: string): string | undefined {
  const key = name
    .normalize('NFKC')
    .trim()
    .toLowerCase()
    .replace(/[\s_]+/g, '-')
  if (key === 'science-fiction' || key === 'scifi') return 'sci-fi'
  if (key === 'sports') return 'sport'
  return GENRES.find((g) => g.id === key)?.id
}
