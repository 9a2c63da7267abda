/** A stable hue per title, so a title without artwork still has its own look. */
const hueOf = (id: string) => {
  let h = 0
  for (const c of id) h = (h * 31 + (c.codePointAt(0) ?? 0)) % 360
  return h
}

/** The dark gradient standing in for missing artwork, in the title's own colour. */
export const artBackground = (id: string) => {
  const hue = hueOf(id)
  return `linear-gradient(135deg, hsl(${hue} 45% 24%), hsl(${(hue + 40) % 360} 35% 10%))`
}

/**
 * A tile's picture: the artwork when the title has one, else a dark card in the title's own colour
 * with its name set large (decorative: the link around it names the title).
 */
export function Artwork({ id, title, src }: { id: string; title: string; src?: string }) {
  if (src) return <img src={src} alt="" loading="lazy" />
  return (
    <div className="art generated" aria-hidden="true" style={{ background: artBackground(id) }}>
      <span>{title}</span>
    </div>
  )
}
