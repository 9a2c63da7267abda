import { Link, useLocation } from 'wouter'

const SECTIONS = [
  { href: '/admin', label: 'Upload' },
  { href: '/admin/titles', label: 'Catalog' },
  { href: '/admin/import', label: 'Import' },
]

/** The administrator's sections; the current one is marked for screen readers too. */
export function AdminNav() {
  const [location] = useLocation()
  const current = (href: string) =>
    href === '/admin' ? location === '/admin' : location === href || location.startsWith(`${href}/`)
  return (
    <nav className="tabs" aria-label="Administration">
      {SECTIONS.map((s) => (
        <Link key={s.href} href={s.href} aria-current={current(s.href) ? 'page' : undefined}>
          {s.label}
        </Link>
      ))}
    </nav>
  )
}
