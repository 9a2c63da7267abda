/** The static page the web bench's server writes next to the app (dist/web). */
export const BLANK_PAGE = 'bench-blank.html'
